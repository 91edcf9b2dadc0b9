"""Tiny ONNX models with known outputs, and their model cards, written by the tests.

Each model's output is a constant (the boxes or heatmaps the test asks for) plus 0 × the sum of
its input, so onnxruntime really consumes an input of the declared shape and checks it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 10  # onnx 1.23 stamps its newest IR by default, which onnxruntime builds may refuse
INPUT_NAME = "images"
OUTPUT_NAME = "output0"

# cx, cy, w, h (model-input pixels), class index, score
BoxSpec = tuple[float, float, float, float, int, float]
Layout = Literal["v8", "v8-transposed", "v5"]
Dims = Sequence[int | str]


def _write_constant_model(
    path: Path, constant: npt.NDArray[np.float32], input_shape: Dims, output_shape: Dims | None = None
) -> Path:
    """output = constant + 0 · ReduceSum(input).

    With a symbolic `output_shape` the constant is also reshaped by a shape computed from the
    input's runtime shape, so onnxruntime cannot infer the output's dimensions before a run
    (given a dynamic input; a static one is folded back to constants).
    """
    nodes = [
        helper.make_node("ReduceSum", [INPUT_NAME], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Add", ["constant", "nothing"], ["sum" if output_shape else OUTPUT_NAME]),
    ]
    initializers = [
        numpy_helper.from_array(constant.astype(np.float32), "constant"),
        numpy_helper.from_array(np.zeros((), dtype=np.float32), "zero"),
    ]
    if output_shape:
        nodes += [
            helper.make_node("Shape", [INPUT_NAME], ["input_shape"]),
            helper.make_node("ReduceSum", ["input_shape"], ["shape_total"], keepdims=1),
            helper.make_node("Mul", ["shape_total", "zero_int"], ["no_shape"]),
            helper.make_node("Add", ["output_shape", "no_shape"], ["runtime_shape"]),
            helper.make_node("Reshape", ["sum", "runtime_shape"], [OUTPUT_NAME]),
        ]
        initializers += [
            numpy_helper.from_array(np.zeros((), dtype=np.int64), "zero_int"),
            numpy_helper.from_array(np.array(constant.shape, dtype=np.int64), "output_shape"),
        ]
    graph = helper.make_graph(
        nodes,
        "fixture",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, list(output_shape or constant.shape))],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _input_shape(input_size: tuple[int, int], channels: int, dynamic_input: bool) -> Dims:
    width, height = input_size
    return ["batch", channels, "height", "width"] if dynamic_input else [1, channels, height, width]


def detector_output(boxes: Sequence[BoxSpec], num_classes: int, layout: Layout = "v8") -> npt.NDArray[np.float32]:
    """The output tensor a YOLO head would give for exactly these boxes (plus one empty candidate)."""
    rows = np.zeros((len(boxes) + 1, 4 + num_classes), dtype=np.float32)
    rows[-1, :4] = (10, 10, 4, 4)  # a candidate that scores 0 in every class
    for row, (cx, cy, w, h, class_index, score) in zip(rows, boxes, strict=False):
        row[:4] = (cx, cy, w, h)
        row[4 + class_index] = score
    if layout == "v8":
        return rows.T[None].copy()
    if layout == "v8-transposed":
        return rows[None]
    # v5: objectness and class probability are both √score, so only their product gives the score.
    scores = rows[:, 4:]
    v5 = np.concatenate((rows[:, :4], np.sqrt(scores.max(axis=1, keepdims=True)), np.sqrt(scores)), axis=1)
    return v5[None].astype(np.float32)


def detector_model(
    path: Path,
    *,
    input_size: tuple[int, int] = (640, 640),
    channels: int = 1,
    boxes: Sequence[BoxSpec],
    num_classes: int,
    layout: Layout = "v8",
    dynamic_input: bool = False,
    dynamic_output: bool = False,
) -> Path:
    """A detector whose output encodes `boxes` (in model-input pixels) in the given layout."""
    constant = detector_output(boxes, num_classes, layout)
    output_shape: Dims | None = ["batch", "features", "anchors"] if dynamic_output else None
    return _write_constant_model(path, constant, _input_shape(input_size, channels, dynamic_input), output_shape)


def gaussian_heatmaps(
    heatmap_size: tuple[int, int], peaks: Sequence[tuple[float, float, float]], sigma: float = 2.0
) -> npt.NDArray[np.float32]:
    """(1, K, h, w) maps; peak (x, y, value) in heatmap coordinates where sample (i, j)'s centre is (j + .5, i + .5)."""
    width, height = heatmap_size
    xs = np.arange(width, dtype=np.float64) + 0.5
    ys = np.arange(height, dtype=np.float64) + 0.5
    maps = np.empty((1, len(peaks), height, width), dtype=np.float32)
    for k, (x, y, value) in enumerate(peaks):
        gx = np.exp(-((xs - x) ** 2) / (2 * sigma**2))
        gy = np.exp(-((ys - y) ** 2) / (2 * sigma**2))
        maps[0, k] = value * np.outer(gy, gx)
    return maps


def heatmap_model(
    path: Path,
    *,
    input_size: tuple[int, int] = (256, 256),
    channels: int = 1,
    heatmap_size: tuple[int, int] = (64, 64),
    peaks: Sequence[tuple[float, float, float]],
    sigma: float = 2.0,
) -> Path:
    """A landmark model whose K heatmaps are Gaussians at the given sub-sample positions."""
    constant = gaussian_heatmaps(heatmap_size, peaks, sigma)
    return _write_constant_model(path, constant, _input_shape(input_size, channels, False))


def write_card(path: Path, mapping: Mapping[str, Any]) -> Path:
    """Write a model card as YAML (.yaml/.yml) or JSON (.json), by the path's suffix."""
    data = dict(mapping)
    text = json.dumps(data, indent=2) if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def detector_card(
    classes: Sequence[str | Mapping[str, Any]],
    *,
    input_size: tuple[int, int] = (640, 640),
    channels: int = 1,
    layout: str = "v8",
    **output: Any,
) -> dict[str, Any]:
    """A valid pano card; `output` overrides the thresholds."""
    width, height = input_size
    return {
        "name": "tiny-detector",
        "version": "1.0",
        "task": "pano",
        "input": {"width": width, "height": height, "channels": channels},
        "output": {"kind": "yolo", "layout": layout, **output},
        "classes": [c if isinstance(c, str) else dict(c) for c in classes],
    }


def heatmap_card(
    landmarks: Sequence[str], *, input_size: tuple[int, int] = (256, 256), min_confidence: float = 0.0
) -> dict[str, Any]:
    """A valid ceph card."""
    width, height = input_size
    return {
        "name": "tiny-landmarks",
        "version": "1.0",
        "task": "ceph",
        "input": {"width": width, "height": height},
        "output": {"kind": "heatmap", "min_confidence": min_confidence},
        "landmarks": list(landmarks),
    }
