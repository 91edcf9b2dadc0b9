"""The panoramic pipeline on an ONNX detector: boxes → FDI teeth and findings attached to teeth.

The model card's classes say what each class is: a tooth (`tooth: <FDI>`, or a name that is an FDI
number such as "11" or "tooth_11"), a finding (`finding: caries`, with `severity` only when the
class itself is graded), or both (a DENTEX-style "caries on 36" class). A finding without its own
tooth is attached to the detected tooth its box overlaps most. A tooth no finding points at is
reported as `no_finding`, not `healthy`: detectors trained on abnormal teeth only cannot confirm health.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.base import PipelineLoadError
from pipelines.image import DecodedImage
from pipelines.onnx.card import ClassSpec, YoloOutputSpec
from pipelines.onnx.detection import Box, Detection, decode_yolo
from pipelines.onnx.session import ModelRunner
from pipelines.onnx_pipeline import OnnxPipeline
from pipelines.pano.fdi import fdi_to_universal, is_valid_fdi, parse_fdi


@dataclass(frozen=True)
class ClassMeaning:
    tooth: int | None
    finding: str | None
    severity: str | None


def meaning_of(spec: ClassSpec) -> ClassMeaning:
    """What a card class stands for; a class that is neither tooth nor named finding is a finding by its name."""
    tooth = spec.tooth if spec.tooth is not None else (parse_fdi(spec.name) if spec.finding is None else None)
    if tooth is not None and not is_valid_fdi(tooth):
        raise PipelineLoadError(f"class {spec.name!r}: {tooth} is not an FDI tooth number")
    finding = spec.finding if spec.finding is not None or tooth is not None else spec.name
    return ClassMeaning(tooth, finding, spec.severity)


def overlap_area(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return max(width, 0.0) * max(height, 0.0)


def _box(values: Box) -> list[float]:
    return [round(v, 1) for v in values]


def pano_result(detections: list[Detection], meanings: list[ClassMeaning]) -> dict[str, Any]:
    """Teeth (best box per FDI number) and findings, each finding located on a tooth where possible."""
    teeth: dict[int, Detection] = {}
    findings: list[tuple[Detection, ClassMeaning]] = []
    for detection in detections:
        meaning = meanings[detection.class_index]
        if meaning.tooth is not None and meaning.finding is None:
            best = teeth.get(meaning.tooth)
            if best is None or detection.score > best.score:
                teeth[meaning.tooth] = detection
        else:
            findings.append((detection, meaning))
    diseases = []
    status: dict[int, str] = {}  # a tooth's status: its most confident finding
    for detection, meaning in sorted(findings, key=lambda item: -item[0].score):
        tooth = meaning.tooth
        if tooth is None:
            overlaps = [(overlap_area(detection.box, t.box), fdi) for fdi, t in teeth.items()]
            area, fdi = max(overlaps, default=(0.0, 0))
            tooth = fdi if area > 0 else None
        if tooth is not None:
            status.setdefault(tooth, str(meaning.finding))
        diseases.append(
            {
                "type": meaning.finding,
                "location": None if tooth is None else f"tooth_{tooth}",
                "severity": meaning.severity,
                "confidence": round(detection.score, 4),
                "bbox": _box(detection.box),
            }
        )
    return {
        "teeth": [
            {
                "id": fdi,
                "universal": fdi_to_universal(fdi),
                "status": status.get(fdi, "no_finding"),
                "confidence": round(detection.score, 4),
                "bbox": _box(detection.box),
            }
            for fdi, detection in sorted(teeth.items())
        ],
        "diseases": diseases,
    }


class PanoPipeline(OnnxPipeline[YoloOutputSpec]):
    task_type = "pano"
    output_type = YoloOutputSpec
    _meanings: list[ClassMeaning]

    def prepare(self, runner: ModelRunner) -> None:
        self._meanings = [meaning_of(spec) for spec in runner.card.classes or ()]

    def predict(self, image: DecodedImage) -> dict[str, Any]:
        output, transform = self.runner.infer(image)
        detections = decode_yolo(output, self.output, transform, len(self._meanings))
        result = pano_result(detections, self._meanings)
        result["image"] = image.describe()
        result["model"] = dict(self.model)
        return result
