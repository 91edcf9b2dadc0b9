"""Real pipelines: tiny ONNX models with known outputs and real image files, in process and through workers."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines.base import PipelineLoadError
from pipelines.ceph import CephPipeline
from pipelines.ceph.analysis import analyze
from pipelines.decode import decode_image
from pipelines.image import PixelSpacing, SpacingSource
from pipelines.pano import PanoPipeline
from server.embedded_redis import EmbeddedRedis
from tests.conftest import new_stack
from tests.support.images import dicom_bytes, image_bytes, jpeg_bytes, png16_bytes, png_with_corrupt_data
from tests.support.onnx_models import detector_card, detector_model, heatmap_card, heatmap_model, write_card
from tests.support.receiver import CallbackReceiver
from tests.support.stack import KEY_PREFIX, Stack, wait_until

PANO_CLASSES: list[str | dict[str, Any]] = [
    {"name": "11", "tooth": 11},
    "tooth_21",  # an FDI number in the name is enough
    {"name": "caries", "finding": "caries"},
    {"name": "deep_caries", "finding": "caries", "severity": "deep"},
]
# cx, cy, w, h in pixels of a 640 x 640 model input (scaled to other input sizes), class, score:
# two teeth, a caries on the right-hand one and a deep caries box overlapping both, mostly tooth 11.
MODEL_BOXES = [
    (300.0, 320.0, 40.0, 80.0, 0, 0.91),
    (345.0, 320.0, 40.0, 80.0, 1, 0.88),
    (352.0, 300.0, 16.0, 16.0, 2, 0.71),
    (318.0, 340.0, 20.0, 20.0, 3, 0.64),
]


def letterbox(image: tuple[int, int], model: tuple[int, int]) -> tuple[float, float, int, int]:
    """Scale (x, y) and padding (x, y) of a centred letterbox, worked out independently of the pipeline."""
    (width, height), (model_w, model_h) = image, model
    scale = min(model_w / width, model_h / height)
    resized_w, resized_h = round(width * scale), round(height * scale)
    return resized_w / width, resized_h / height, (model_w - resized_w) // 2, (model_h - resized_h) // 2


def letterbox_to_original(
    point: tuple[float, float], image: tuple[int, int], model: tuple[int, int]
) -> tuple[float, float]:
    scale_x, scale_y, pad_x, pad_y = letterbox(image, model)
    return (point[0] - pad_x) / scale_x, (point[1] - pad_y) / scale_y


def original_to_letterbox(
    point: tuple[float, float], image: tuple[int, int], model: tuple[int, int]
) -> tuple[float, float]:
    scale_x, scale_y, pad_x, pad_y = letterbox(image, model)
    return point[0] * scale_x + pad_x, point[1] * scale_y + pad_y


def model_boxes(model: tuple[int, int]) -> list[tuple[float, float, float, float, int, float]]:
    sx, sy = model[0] / 640, model[1] / 640
    return [(cx * sx, cy * sy, w * sx, h * sy, k, p) for cx, cy, w, h, k, p in MODEL_BOXES]


def expected_box(index: int, image: tuple[int, int], model: tuple[int, int]) -> list[float]:
    cx, cy, w, h = model_boxes(model)[index][:4]
    x1, y1 = letterbox_to_original((cx - w / 2, cy - h / 2), image, model)
    x2, y2 = letterbox_to_original((cx + w / 2, cy + h / 2), image, model)
    return [x1, y1, x2, y2]


def pano_model(directory: Path, model_size: tuple[int, int] = (640, 640)) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = detector_model(directory / "pano.onnx", input_size=model_size, boxes=model_boxes(model_size), num_classes=4)
    write_card(directory / "pano.yaml", detector_card(PANO_CLASSES, input_size=model_size))
    return path


def assert_pano_result(data: dict[str, Any], image: tuple[int, int], model: tuple[int, int]) -> None:
    teeth = {tooth["id"]: tooth for tooth in data["teeth"]}
    assert sorted(teeth) == [11, 21]
    assert (teeth[11]["universal"], teeth[21]["universal"]) == ("8", "9")
    assert teeth[11]["status"] == "caries" and teeth[21]["status"] == "caries"
    assert teeth[11]["confidence"] == pytest.approx(0.91, abs=1e-3)
    for fdi, index in ((11, 0), (21, 1)):
        assert teeth[fdi]["bbox"] == pytest.approx(expected_box(index, image, model), abs=1.0)
    caries, deep = sorted(data["diseases"], key=lambda finding: -finding["confidence"])
    assert (caries["type"], caries["location"], caries["severity"]) == ("caries", "tooth_21", None)
    assert (deep["type"], deep["location"], deep["severity"]) == ("caries", "tooth_11", "deep")
    assert caries["bbox"] == pytest.approx(expected_box(2, image, model), abs=1.0)
    assert data["model"]["name"] == "tiny-detector" and data["model"]["backend"] == "onnx"


@pytest.mark.parametrize(
    ("image", "model_size"),
    [
        (("x.jpg", (1450, 750)), (640, 640)),  # a wide panoramic, letterboxed top and bottom
        (("x.png", (600, 900)), (640, 640)),  # tall: padded left and right
        (("x.bmp", (800, 800)), (512, 256)),  # square into a wide input
        (("x.png16", (2900, 1500)), (1024, 512)),  # 16-bit, full panoramic size
    ],
)
def test_pano_boxes_come_back_in_original_pixels(
    tmp_path: Path, image: tuple[str, tuple[int, int]], model_size: tuple[int, int]
) -> None:
    name, size = image
    if name.endswith("png16"):
        decoded = decode_image(png16_bytes(size), ".png")
        assert decoded.bits_stored == 16
    else:
        extension = name[name.index(".") :]
        decoded = decode_image(image_bytes({".jpg": "JPEG", ".png": "PNG", ".bmp": "BMP"}[extension], size), extension)
    pipeline = PanoPipeline(pano_model(tmp_path, model_size))
    pipeline.load()
    data = pipeline.predict(decoded)
    assert_pano_result(data, size, model_size)
    assert data["image"]["width"] == size[0] and data["image"]["height"] == size[1]


def test_a_card_with_an_invalid_tooth_number_fails_at_load(tmp_path: Path) -> None:
    path = detector_model(tmp_path / "bad.onnx", boxes=MODEL_BOXES, num_classes=4)
    classes: list[str | dict[str, Any]] = [{"name": "t19", "tooth": 19}, "a", "b", "c"]
    write_card(tmp_path / "bad.json", detector_card(classes))
    with pytest.raises(PipelineLoadError, match="19 is not an FDI tooth number"):
        PanoPipeline(path).load()


def test_a_ceph_card_for_a_pano_pipeline_fails_at_load(tmp_path: Path) -> None:
    path = heatmap_model(tmp_path / "ceph.onnx", peaks=[(10.0, 10.0, 1.0)])
    write_card(tmp_path / "ceph.yaml", heatmap_card(["Sella"]))
    with pytest.raises(PipelineLoadError, match="configured for pano"):
        PanoPipeline(path).load()


def test_a_missing_model_fails_at_load_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineLoadError, match="absent.onnx"):
        CephPipeline(tmp_path / "absent.onnx").load()


# A right-facing cephalogram of 400 x 480 pixels: the 19 ISBI landmarks by their abbreviations.
CEPH_SIZE = (400, 480)
CEPH_POINTS = {
    "S": (120.0, 150.0),
    "N": (300.0, 130.0),
    "Or": (260.0, 170.0),
    "Po": (90.0, 180.0),
    "A": (300.0, 260.0),
    "B": (290.0, 360.0),
    "Pog": (295.0, 400.0),
    "Me": (280.0, 430.0),
    "Gn": (292.0, 420.0),
    "Go": (130.0, 360.0),
    "LI": (305.0, 305.0),
    "UI": (311.5, 300.0),
    "UL": (330.0, 290.0),
    "LL": (325.0, 330.0),
    "Sn": (335.0, 240.0),
    "Pog'": (315.0, 410.0),
    "PNS": (160.0, 250.0),
    "ANS": (310.0, 240.0),
    "Ar": (110.0, 250.0),
}
FULL_NAMES = {
    "S": "Sella",
    "N": "Nasion",
    "Or": "Orbitale",
    "Po": "Porion",
    "A": "Subspinale",
    "B": "Supramentale",
    "UI": "Upper incisal incision",
    "LI": "Lower incisal incision",
}
CEPH_MODEL = (256, 256)
STRIDE = 4


def ceph_model(directory: Path, missing: str | None = None) -> Path:
    """Heatmaps peaking where the landmarks are; `missing`'s channel stays below the card's threshold."""
    directory.mkdir(parents=True, exist_ok=True)
    peaks = []
    for name, point in CEPH_POINTS.items():
        x, y = original_to_letterbox(point, CEPH_SIZE, CEPH_MODEL)
        peaks.append((x / STRIDE, y / STRIDE, 0.1 if name == missing else 0.93))
    heatmap_size = (CEPH_MODEL[0] // STRIDE, CEPH_MODEL[1] // STRIDE)
    path = heatmap_model(directory / "ceph.onnx", input_size=CEPH_MODEL, heatmap_size=heatmap_size, peaks=peaks)
    write_card(directory / "ceph.yaml", heatmap_card(list(CEPH_POINTS), input_size=CEPH_MODEL, min_confidence=0.3))
    return path


def assert_ceph_result(data: dict[str, Any], missing: str | None = None) -> None:
    landmarks = {landmark["name"]: landmark for landmark in data["landmarks"]}
    assert len(landmarks) == 19 - (missing is not None)
    for abbreviation, full_name in FULL_NAMES.items():
        if abbreviation == missing:
            assert full_name not in landmarks and full_name in data["missingLandmarks"]
            continue
        found = landmarks[full_name]
        assert (found["x"], found["y"]) == pytest.approx(CEPH_POINTS[abbreviation], abs=0.5)
        assert 0.8 < found["confidence"] <= 0.93  # the highest sample near a peak of 0.93
    spacing = PixelSpacing(0.1, 0.1, SpacingSource.CALIBRATED)
    truth = analyze(
        {FULL_NAMES.get(k) or landmarks_name(k): v for k, v in CEPH_POINTS.items() if k != missing}, spacing
    )
    for name, value in truth.measurements.items():
        if value is None:
            assert data["measurements"][name] is None, name
        else:
            assert data["measurements"][name] == pytest.approx(value, abs=0.3), name
    # UI is 6.5 px in front of LI and 5 px above it: MW = hypot(0.65, 0.5) mm, positive.
    assert data["measurements"]["MW"] == pytest.approx(math.hypot(0.65, 0.5), abs=0.05)
    assert data["pixelSpacing"] == {"rowMm": 0.1, "colMm": 0.1, "source": "calibrated"}
    assert data["facing"] == "right"
    by_name = {entry["name"]: entry for entry in data["analysis"]}
    assert by_name["MW"]["unit"] == "mm" and by_name["MW"]["spacingSource"] == "calibrated"


def landmarks_name(abbreviation: str) -> str:
    from pipelines.ceph.landmarks import resolve_landmark

    found = resolve_landmark(abbreviation)
    assert found is not None
    return found.name


def test_ceph_landmarks_and_measurements_from_a_calibrated_dicom(tmp_path: Path) -> None:
    pipeline = CephPipeline(ceph_model(tmp_path))
    pipeline.load()
    data = pipeline.predict(decode_image(dicom_bytes(CEPH_SIZE), ".dcm"))
    assert_ceph_result(data)


def test_a_landmark_below_the_threshold_is_missing_and_only_its_measurements_are_null(tmp_path: Path) -> None:
    pipeline = CephPipeline(ceph_model(tmp_path, missing="Or"))
    pipeline.load()
    data = pipeline.predict(decode_image(dicom_bytes(CEPH_SIZE), ".dcm"))
    assert_ceph_result(data, missing="Or")
    assert data["measurements"]["ODI"] is None and data["measurements"]["APDI"] is None
    assert data["measurements"]["SNA"] is not None


def test_without_a_pixel_spacing_mm_values_are_null(tmp_path: Path) -> None:
    pipeline = CephPipeline(ceph_model(tmp_path))
    pipeline.load()
    data = pipeline.predict(decode_image(jpeg_bytes(CEPH_SIZE), ".jpg"))
    assert data["pixelSpacing"] is None
    assert data["measurements"]["MW"] is None
    assert data["measurements"]["SNA"] is not None


# Through real workers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_stack(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    models = tmp_path_factory.mktemp("models")
    stack = new_stack(
        redis_server,
        tmp_path_factory,
        XRAY__PIPELINES__PANO__BACKEND="onnx",
        XRAY__PIPELINES__PANO__MODEL=str(pano_model(models / "pano")),
        XRAY__PIPELINES__CEPH__BACKEND="onnx",
        XRAY__PIPELINES__CEPH__MODEL=str(ceph_model(models / "ceph")),
        XRAY__PIPELINES__CEPH__DEVICE="cpu",
        XRAY__PIPELINES__CEPH__THREADS="1",
    )
    stack.start_all()
    yield stack
    stack.stop()


@pytest.mark.parametrize(
    ("name", "fmt", "size"),
    [("pano.jpg", "JPEG", (1450, 750)), ("tall.png", "PNG", (600, 900)), ("square.bmp", "BMP", (800, 800))],
)
def test_pano_model_result_reaches_the_receiver(
    model_stack: Stack, receiver: CallbackReceiver, name: str, fmt: str, size: tuple[int, int]
) -> None:
    task_id = model_stack.submit(receiver.url(), "pano", (name, image_bytes(fmt, size)))
    payload = receiver.wait_for(task_id)[0].json
    assert payload["status"] == "succeeded", payload
    assert_pano_result(payload["data"], size, (640, 640))
    assert payload["data"]["image"]["format"] == fmt.lower()
    assert (payload["data"]["image"]["width"], payload["data"]["image"]["height"]) == size


def test_ceph_model_result_reaches_the_receiver(model_stack: Stack, receiver: CallbackReceiver) -> None:
    task_id = model_stack.submit(receiver.url(), "ceph", ("ceph.dcm", dicom_bytes(CEPH_SIZE)))
    payload = receiver.wait_for(task_id)[0].json
    assert payload["status"] == "succeeded", payload
    assert_ceph_result(payload["data"])
    assert payload["data"]["model"]["provider"] == "CPUExecutionProvider"


def test_each_pool_process_loads_its_models_once(model_stack: Stack, receiver: CallbackReceiver) -> None:
    for _ in range(4):
        task_id = model_stack.submit(receiver.url(), "pano", ("pano.jpg", jpeg_bytes((400, 300))))
        assert receiver.wait_for(task_id)[0].json["status"] == "succeeded"
    log = model_stack.log("worker")
    assert log.count("pipeline pano (onnx) loaded") == 2  # one per pool process, however many tasks
    (reports_key,) = model_stack.redis().keys(f"{KEY_PREFIX}worker:*:pipelines")
    reports = {k: json.loads(v) for k, v in model_stack.redis().hgetall(reports_key).items()}
    assert reports["pano"]["loaded"] and reports["ceph"]["loaded"]
    assert reports["pano"]["kind"] == "onnx"


def test_an_undecodable_image_ends_with_12003(stack: Stack, receiver: CallbackReceiver) -> None:
    # Its header and ending pass the API's checks; only decoding the pixels finds the damage.
    task_id = stack.submit(receiver.url(), "pano", ("bad.png", png_with_corrupt_data()))
    payload = receiver.wait_for(task_id)[0].json
    assert payload["status"] == "failed"
    assert payload["error"]["code"] == 12003
    assert "corrupt" in payload["error"]["message"]
    wait_until(lambda: stack.stored_files() == [])  # deleted just after the callback is owed


def test_a_pipeline_class_of_your_own_with_options(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory, receiver: CallbackReceiver
) -> None:
    stack = new_stack(
        redis_server,
        tmp_path_factory,
        XRAY__PIPELINES__PANO__CLASS="tests.support.custom_pipeline:EchoPipeline",
        XRAY__PIPELINES__PANO__OPTIONS='{"label": "clinic model"}',
    )
    try:
        stack.start_all()
        results = []
        for _ in range(3):
            task_id = stack.submit(receiver.url(), "pano", ("p.png", png16_bytes((320, 200))))
            results.append(receiver.wait_for(task_id)[0].json["data"])
    finally:
        stack.stop()
    assert {r["label"] for r in results} == {"clinic model"}
    assert results[0]["size"] == [320, 200] and results[0]["dtype"] == "uint16"
    assert {r["loadsInThisProcess"] for r in results} == {1}


def test_a_pipeline_that_fails_to_load_leaves_its_tasks_for_a_healthy_worker(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory, receiver: CallbackReceiver
) -> None:
    stack = new_stack(
        redis_server, tmp_path_factory, XRAY__PIPELINES__PANO__CLASS="tests.support.custom_pipeline:BrokenPipeline"
    )
    try:
        stack.start_all()
        wait_until(lambda: "no longer taking pano tasks" in stack.log("worker"))
        (reports_key,) = stack.redis().keys(f"{KEY_PREFIX}worker:*:pipelines")
        report = json.loads(stack.redis().hget(reports_key, "pano") or "{}")
        assert report["loaded"] is False and "weights.bin is missing" in report["error"]

        def workers() -> dict[str, Any]:
            checks: dict[str, Any] = httpx.get(f"{stack.base_url}/health", timeout=10).json()["checks"]
            return dict(checks["workers"])

        wait_until(lambda: workers()["pano"] == {"ok": False, "live": 0, "pipelineFailed": 1})
        assert workers()["ceph"]["ok"] is True
        pano_id = stack.submit(receiver.url(), "pano")
        ceph_id = stack.submit(receiver.url(), "ceph")  # its pipeline loaded: still served
        assert receiver.wait_for(ceph_id)[0].json["status"] == "succeeded"
        assert stack.view(pano_id)["status"] == "queued"
        assert receiver.for_task(pano_id) == []
        del stack.settings["XRAY__PIPELINES__PANO__CLASS"]
        stack.start_worker("healthy-worker")
        assert receiver.wait_for(pano_id)[0].json["status"] == "succeeded"
    finally:
        stack.stop()
