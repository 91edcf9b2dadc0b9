"""The cephalometric pipeline on an ONNX heatmap model: landmarks → ISBI measurements and their classes."""

from __future__ import annotations

from typing import Any

from pipelines.base import PipelineLoadError
from pipelines.ceph.analysis import analyze
from pipelines.ceph.landmarks import resolve_landmark
from pipelines.image import DecodedImage
from pipelines.onnx.card import HeatmapOutputSpec
from pipelines.onnx.heatmap import decode_heatmaps
from pipelines.onnx.session import ModelRunner
from pipelines.onnx_pipeline import OnnxPipeline


class CephPipeline(OnnxPipeline):
    task_type = "ceph"
    _names: list[str]

    _output: HeatmapOutputSpec

    def check_card(self, runner: ModelRunner) -> None:
        if not isinstance(runner.card.output, HeatmapOutputSpec):
            raise PipelineLoadError(f"{self.model_path}: a ceph model must have output kind heatmap")
        self._output = runner.card.output
        # Card names may be abbreviations ("S", "Pog'") or full names; results use the full ISBI
        # name where one is known, and the card's own name for any other landmark.
        self._names = []
        for name in runner.card.landmarks or ():
            known = resolve_landmark(name)
            self._names.append(known.name if known else name)

    def predict(self, image: DecodedImage) -> dict[str, Any]:
        runner = self.runner
        output, transform = runner.infer(image)
        size = (runner.card.input.width, runner.card.input.height)
        peaks = decode_heatmaps(output, transform, size, self._output.min_confidence)
        landmarks = [
            {"name": name, "x": round(peak.x, 2), "y": round(peak.y, 2), "confidence": round(peak.confidence, 4)}
            for name, peak in zip(self._names, peaks, strict=True)
            if peak is not None
        ]
        found = {name: (peak.x, peak.y) for name, peak in zip(self._names, peaks, strict=True) if peak is not None}
        cephalometry = analyze(found, image.spacing)
        return {
            "landmarks": landmarks,
            "missingLandmarks": [name for name, peak in zip(self._names, peaks, strict=True) if peak is None],
            "measurements": cephalometry.measurements,
            "analysis": cephalometry.analysis,
            "facing": cephalometry.facing,
            "pixelSpacing": None if image.spacing is None else image.spacing.as_json(),
            "image": image.describe(),
            "model": self.model_description(),
        }
