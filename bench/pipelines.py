"""Per-task cost of the real pipelines apart from model time: decode, preprocess, postprocess.

    make bench BENCH_ARGS="--pipelines"      # or: python -m bench.pipelines

Uses the tests' tiny ONNX models (constant outputs, so "model" time is ONNX Runtime's own overhead
for the input size, not a network's) on a 2900 x 1500 panoramic JPEG and a 1935 x 2400 16-bit
cephalogram (PNG and DICOM). Prints JSON: median milliseconds per stage, and the first and second
`predict()` after `load()` to show that loading is paid once.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pipelines.ceph import CephPipeline
from pipelines.ceph.landmarks import LANDMARKS as ISBI_LANDMARKS
from pipelines.decode import decode_image
from pipelines.image import DecodedImage
from pipelines.onnx.detection import decode_yolo
from pipelines.onnx.heatmap import decode_heatmaps
from pipelines.onnx.preprocess import Transform, prepare
from pipelines.pano import PanoPipeline
from tests.support.images import dicom_bytes, jpeg_bytes, png16_bytes
from tests.support.onnx_models import detector_card, detector_model, heatmap_card, heatmap_model, write_card

REPEATS = 15
LANDMARKS = [landmark.abbreviation for landmark in ISBI_LANDMARKS]


def median_ms(action: Callable[[], object], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def timed_ms(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return round((time.perf_counter() - started) * 1000, 2)


Postprocess = Callable[[npt.NDArray[np.float32], Transform], object]


def stage_figures(
    pipeline: PanoPipeline | CephPipeline, image: DecodedImage, postprocess: Postprocess
) -> dict[str, Any]:
    """Load once, then each stage of `predict()` timed on its own, and two whole predictions."""
    load_ms = timed_ms(pipeline.load)
    first, second = timed_ms(lambda: pipeline.predict(image)), timed_ms(lambda: pipeline.predict(image))
    spec = pipeline.runner.card.input
    batch, transform = prepare(image, spec)
    output = np.asarray(pipeline.runner.run(batch), dtype=np.float32)
    return {
        "preprocess_ms": median_ms(lambda: prepare(image, spec)),
        "model_run_ms": median_ms(lambda: pipeline.runner.run(batch)),
        "postprocess_ms": median_ms(lambda: postprocess(output, transform)),
        "predict_total_ms": median_ms(lambda: pipeline.predict(image)),
        "load_ms": load_ms,
        "first_predict_ms": first,
        "second_predict_ms": second,
    }


def pano_figures(folder: Path) -> dict[str, Any]:
    model_size = (1024, 512)
    boxes = [(100.0 + 25 * i, 250.0, 20.0, 60.0, i % 16, 0.9) for i in range(32)]
    classes = [{"name": str(10 * q + n), "tooth": 10 * q + n} for q in (1, 2) for n in range(1, 9)]
    path = detector_model(folder / "pano.onnx", input_size=model_size, boxes=boxes, num_classes=16)
    write_card(folder / "pano.yaml", detector_card(classes, input_size=model_size))
    data = jpeg_bytes((2900, 1500))
    pipeline = PanoPipeline(path)
    stages = stage_figures(
        pipeline,
        decode_image(data, ".jpg"),
        lambda out, transform: decode_yolo(out, pipeline.output, transform, len(classes)),
    )
    return {
        "image": "2900 x 1500 8-bit JPEG",
        "model_input": list(model_size),
        "decode_ms": median_ms(lambda: decode_image(data, ".jpg")),
        **stages,
    }


def ceph_figures(folder: Path) -> dict[str, Any]:
    model_size, heatmap_size = (512, 512), (128, 128)
    peaks = [(20.0 + 5 * i, 30.0 + 4 * i, 0.9) for i in range(len(LANDMARKS))]
    path = heatmap_model(folder / "ceph.onnx", input_size=model_size, heatmap_size=heatmap_size, peaks=peaks)
    write_card(folder / "ceph.yaml", heatmap_card(LANDMARKS, input_size=model_size))
    size = (1935, 2400)
    files = {".png": png16_bytes(size), ".dcm": dicom_bytes(size)}
    stages = stage_figures(
        CephPipeline(path),
        decode_image(files[".dcm"], ".dcm"),
        lambda out, transform: decode_heatmaps(out, transform, model_size, 0.0),
    )
    return {
        "image": "1935 x 2400, 16-bit PNG and 12-bit DICOM",
        "model_input": list(model_size),
        "decode_png16_ms": median_ms(lambda: decode_image(files[".png"], ".png")),
        "decode_dicom_ms": median_ms(lambda: decode_image(files[".dcm"], ".dcm")),
        **stages,
    }


def figures() -> dict[str, Any]:
    """Both pipelines' figures, with their tiny models in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="xray-bench-pipelines-") as folder:
        return {"pano": pano_figures(Path(folder)), "ceph": ceph_figures(Path(folder))}


def main() -> int:
    print(json.dumps(figures(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
