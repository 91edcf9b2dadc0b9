"""The cephalometric pipeline on an ONNX heatmap model: landmarks → ISBI measurements and their classes."""

from __future__ import annotations

from typing import Any

from pipelines.ceph.analysis import analyze
from pipelines.ceph.landmarks import resolve_landmark
from pipelines.image import DecodedImage
from pipelines.onnx.card import HeatmapOutputSpec
from pipelines.onnx.heatmap import decode_heatmaps
from pipelines.onnx.session import ModelRunner
from pipelines.onnx_pipeline import OnnxPipeline


class CephPipeline(OnnxPipeline[HeatmapOutputSpec]):
    task_type = "ceph"
    output_type = HeatmapOutputSpec
    _names: list[str]
    _input_size: tuple[int, int]

    def prepare(self, runner: ModelRunner) -> None:
        # Card names may be abbreviations ("S", "Pog'") or full names; results use the full ISBI
        # name where one is known, and the card's own name for any other landmark.
        self._names = []
        for name in runner.card.landmarks or ():
            known = resolve_landmark(name)
            self._names.append(known.name if known else name)
        self._input_size = (runner.card.input.width, runner.card.input.height)

    def predict(self, image: DecodedImage) -> dict[str, Any]:
        output, transform = self.runner.infer(image)
        peaks = decode_heatmaps(output, transform, self._input_size, self.output.min_confidence)
        landmarks, found, missing = [], {}, []
        for name, peak in zip(self._names, peaks, strict=True):
            if peak is None:
                missing.append(name)
                continue
            found[name] = (peak.x, peak.y)
            landmarks.append(
                {"name": name, "x": round(peak.x, 2), "y": round(peak.y, 2), "confidence": round(peak.confidence, 4)}
            )
        cephalometry = analyze(found, image.spacing)
        return {
            "landmarks": landmarks,
            "missingLandmarks": missing,
            **cephalometry.as_json(),  # measurements, analysis, facing
            "pixelSpacing": None if image.spacing is None else image.spacing.as_json(),
            "image": image.describe(),
            "model": dict(self.model),
        }
