"""YOLO-style detection output → scored, class-aware-suppressed boxes in original-image pixels.

Layouts (batch 1; N candidate boxes, nc classes; boxes as centre x, centre y, width, height in
model-input pixels):

    v8   (1, 4 + nc, N)  rows cx, cy, w, h, then one score per class   (Ultralytics YOLOv8+ export)
         (1, N, 4 + nc)  the same, transposed (some exporters); told apart by which axis is 4 + nc
    v5   (1, N, 5 + nc)  cx, cy, w, h, objectness, class probabilities; score = objectness × class

Each candidate keeps its best class only (no multi-label output: a tooth is one tooth). Candidates
with a score strictly above `score_threshold` go through greedy non-maximum suppression per class,
best score first: a box is dropped when its IoU with a kept box of the same class exceeds
`iou_threshold`. Boxes are then mapped to the original image and clipped to it; a box left with no
area (it lay wholly in the letterbox padding) is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pipelines.onnx.card import YoloOutputSpec
from pipelines.onnx.preprocess import Transform

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """One box in original-image coordinates (x1, y1, x2, y2; see `pipelines.onnx.preprocess`)."""

    class_index: int
    score: float
    box: Box


def _feature_major(output: npt.ArrayLike, spec: YoloOutputSpec, num_classes: int) -> npt.NDArray[np.float32]:
    """The output as a (features, N) view: rows cx, cy, w, h, [objectness,] class scores."""
    data = np.asarray(output, dtype=np.float32)
    width = spec.values_per_box(num_classes)
    if data.ndim == 3 and data.shape[0] == 1:
        # v8 is feature-major as exported; v5 and transposed v8 are candidate-major. If both axes
        # equal 4 + nc the exporter's usual layout wins.
        if spec.layout == "v8" and data.shape[1] == width:
            return np.squeeze(data, axis=0)
        if data.shape[2] == width:
            return np.squeeze(data, axis=0).T
    shapes = f"(1, N, {width})" if spec.layout == "v5" else f"(1, {width}, N) or (1, N, {width})"
    raise ValueError(
        f"a {spec.layout} detector output with {num_classes} classes needs shape {shapes} "
        f"- {width} values per box; got {data.shape}"
    )


def _nms(
    boxes: npt.NDArray[np.float64], scores: npt.NDArray[np.float32], iou_threshold: float, limit: int
) -> list[int]:
    """Indices kept by greedy NMS, best score first; one vectorised IoU row per kept box."""
    x1, y1, x2, y2 = boxes.T
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < limit:
        best, rest = int(order[0]), order[1:]
        keep.append(best)
        inter_w = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        inter_h = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        inter = inter_w * inter_h
        union = areas[best] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= iou_threshold]
    return keep


def decode_yolo(output: npt.ArrayLike, spec: YoloOutputSpec, transform: Transform, num_classes: int) -> list[Detection]:
    """Detections, best score first, at most `spec.max_detections` of them."""
    features = _feature_major(output, spec, num_classes)
    if spec.layout == "v5":
        objectness = features[4]
        # score = obj × class ≤ obj for probabilities, so low objectness can be dropped before the product.
        candidates = np.flatnonzero(objectness > spec.score_threshold)
        class_scores = features[5:, candidates] * objectness[candidates]
    else:
        candidates = np.arange(features.shape[1])
        class_scores = features[4:]
    labels = np.argmax(class_scores, axis=0)
    scores = np.take_along_axis(class_scores, labels[None, :], axis=0)[0]
    passed = scores > spec.score_threshold  # NaN scores fail this too
    passed &= np.all(np.isfinite(features[:4, candidates]), axis=0)
    labels, scores = labels[passed], scores[passed]
    cx, cy, w, h = features[:4, candidates[passed]].astype(np.float64)
    boxes = np.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), axis=1)
    if not len(scores):
        return []

    # Class-aware NMS in one pass: shift each class to its own region so classes never overlap.
    span = float(boxes.max() - boxes.min()) + 1.0
    keep = _nms(boxes + (labels * span)[:, None], scores, spec.iou_threshold, spec.max_detections)

    mapped = transform.clip_boxes(transform.boxes_to_original(boxes[keep]))
    has_area = (mapped[:, 2] > mapped[:, 0]) & (mapped[:, 3] > mapped[:, 1])
    return [
        Detection(int(label), float(score), (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
        for label, score, b, ok in zip(labels[keep], scores[keep], mapped, has_area, strict=True)
        if ok
    ]
