"""The generic ONNX backend: model cards, sessions, preprocessing and output decoding.

Models are built by `tests.support.onnx_models` with known outputs and run through onnxruntime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pytest

from pipelines.image import DecodedImage
from pipelines.onnx.card import ClassSpec, InputSpec, YoloOutputSpec, load_card
from pipelines.onnx.detection import decode_yolo
from pipelines.onnx.errors import ModelCardError, ModelMismatchError, OnnxModelError, ProviderError
from pipelines.onnx.heatmap import decode_heatmaps
from pipelines.onnx.preprocess import Transform, plan, prepare
from pipelines.onnx.session import CPU, CUDA, ModelRunner, open_session, providers_for
from tests.support.onnx_models import (
    BoxSpec,
    Layout,
    detector_card,
    detector_model,
    heatmap_card,
    heatmap_model,
    write_card,
)

Resize = Literal["letterbox", "stretch"]


def gray(width: int, height: int, value: int = 0, dtype: type[np.unsignedinteger[Any]] = np.uint8) -> DecodedImage:
    pixels = np.full((height, width), value, dtype=dtype)
    bits = 8 if dtype is np.uint8 else 12
    return DecodedImage(pixels=pixels, source_format="png", spacing=None, bits_stored=bits, size_bytes=0)


def open_runner(model: Path, card: dict[str, Any]) -> ModelRunner:
    write_card(model.with_suffix(".yaml"), card)
    return ModelRunner.open(model, device="cpu", intra_op_threads=1)


# --- model cards -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_card_is_read_from_yaml_or_json_beside_the_model(tmp_path: Path, suffix: str) -> None:
    classes: list[Any] = ["tooth", {"name": "caries_16", "tooth": 16, "finding": "caries", "severity": "mild"}]
    write_card(tmp_path / f"model{suffix}", detector_card(classes, input_size=(512, 256), score_threshold=0.4))
    card = load_card(tmp_path / "model.onnx")
    assert (card.name, card.version, card.task) == ("tiny-detector", "1.0", "pano")
    assert (card.input.width, card.input.height, card.input.resize) == (512, 256, "letterbox")
    assert isinstance(card.output, YoloOutputSpec) and card.output.score_threshold == 0.4
    assert card.classes == (
        ClassSpec(name="tooth"),
        ClassSpec(name="caries_16", tooth=16, finding="caries", severity="mild"),
    )
    assert card.output_channels == 2


def test_missing_card_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelCardError, match=r"no model card for .*model\.onnx.*model\.yaml, model\.yml, model\.json"):
        load_card(tmp_path / "model.onnx")


def test_two_cards_are_refused(tmp_path: Path) -> None:
    write_card(tmp_path / "model.yaml", detector_card(["a"]))
    write_card(tmp_path / "model.json", detector_card(["a"]))
    with pytest.raises(ModelCardError, match=r"several model cards .*model\.yaml, model\.json"):
        load_card(tmp_path / "model.onnx")


def test_card_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.yaml").write_text("name: [unclosed", encoding="utf-8")
    with pytest.raises(ModelCardError, match="not valid YAML"):
        load_card(tmp_path / "model.onnx")


def _edit(card: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    target: Any = card
    for key in parents:
        target = target[key] if not key.isdigit() else target[int(key)]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return card


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("input.width", 0, r"input\.width: Input should be greater than 0 \(got 0\)"),
        ("input.channels", 2, r"input\.channels: Input should be 1 or 3"),
        ("input.resize", "crop", r"input\.resize: Input should be 'letterbox' or 'stretch'"),
        ("input.std", [0.0], r"input\.std: .*positive"),
        ("input.mean", [0.1, 0.2], r"input: mean needs 1 value \(one per channel, or one for all\), got 2"),
        ("output.layout", "v9", r"output\.layout: Input should be 'v8' or 'v5'"),
        ("output.iou_threshold", 1.5, r"output\.iou_threshold: Input should be less than or equal to 1"),
        ("output.min_confidence", 0.5, r"output\.min_confidence: Extra inputs are not permitted"),
        ("colour", "blue", r"colour: Extra inputs are not permitted"),
        ("version", 1.0, r'version: must be a string; quote it, e.g. version: "1.0"'),
        ("name", None, r"name: Field required"),
        ("classes", None, r"output\.kind yolo needs a non-empty classes list"),
        ("classes", ["a", "a"], r"classes must be unique; repeated: a"),
        ("classes", [{"name": "a", "tooth_number": 11}], r"classes\.0\.tooth_number: Extra inputs"),
        ("landmarks", ["S"], r"output\.kind yolo takes classes, not landmarks"),
        ("task", "ceph", r"task ceph needs output\.kind heatmap, not yolo"),
    ],
)
def test_bad_card_fields_are_named(tmp_path: Path, field: str, value: Any, message: str) -> None:
    write_card(tmp_path / "model.yml", _edit(detector_card(["a", "b"]), field, value))
    with pytest.raises(ModelCardError, match=rf"invalid model card .*model\.yml: .*{message}"):
        load_card(tmp_path / "model.onnx")


# --- sessions and runners ----------------------------------------------------------------------


def test_providers_follow_the_device() -> None:
    assert providers_for("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert providers_for("auto", [CPU]) == [CPU]
    assert providers_for("cpu", [CUDA, CPU]) == [CPU]
    assert providers_for("cuda", [CUDA, CPU]) == [CUDA, CPU]
    with pytest.raises(ProviderError, match="no CUDAExecutionProvider .*offers CPUExecutionProvider"):
        providers_for("cuda", [CPU])
    with pytest.raises(ProviderError, match="unknown device 'gpu'"):
        providers_for("gpu", [CPU])


def test_session_on_cpu_with_thread_counts(tmp_path: Path) -> None:
    model = detector_model(tmp_path / "m.onnx", input_size=(64, 64), boxes=[], num_classes=1)
    session = open_session(model, device="cpu", intra_op_threads=1, inter_op_threads=1)
    assert session.get_providers() == [CPU]
    assert session.get_session_options().intra_op_num_threads == 1
    assert [i.name for i in session.get_inputs()] == ["images"]


def test_cuda_without_cuda_is_refused(tmp_path: Path) -> None:
    import onnxruntime

    if CUDA in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    model = detector_model(tmp_path / "m.onnx", input_size=(64, 64), boxes=[], num_classes=1)
    with pytest.raises(ProviderError, match="device cuda"):
        open_session(model, device="cuda")


def test_unreadable_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OnnxModelError, match="no ONNX model at"):
        open_session(tmp_path / "absent.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(OnnxModelError, match="onnxruntime cannot load .*junk.onnx"):
        open_session(tmp_path / "junk.onnx", device="cpu")


def test_runner_refuses_a_class_count_the_model_does_not_have(tmp_path: Path) -> None:
    model = detector_model(tmp_path / "m.onnx", input_size=(64, 64), boxes=[], num_classes=2)
    with pytest.raises(
        ModelMismatchError, match=r"shape \[1, 6, 1\]; a v8 detector with 3 classes needs .*\(1, 7, N\)"
    ):
        open_runner(model, detector_card(["a", "b", "c"], input_size=(64, 64)))


def test_runner_refuses_another_input_size_or_name(tmp_path: Path) -> None:
    model = detector_model(tmp_path / "m.onnx", input_size=(64, 32), boxes=[], num_classes=1)
    with pytest.raises(ModelMismatchError, match=r"shape \[1, 1, 32, 64\], the card describes \[1, 1, 64, 64\]"):
        open_runner(model, detector_card(["a"], input_size=(64, 64)))
    card = detector_card(["a"], input_size=(64, 32))
    card["input"]["name"] = "pixels"
    with pytest.raises(ModelMismatchError, match="the card names input 'pixels', the model has 'images'"):
        open_runner(model, card)


def test_runner_refuses_a_landmark_count_the_model_does_not_have(tmp_path: Path) -> None:
    model = heatmap_model(tmp_path / "m.onnx", input_size=(64, 64), heatmap_size=(16, 16), peaks=[(4, 4, 1.0)] * 2)
    with pytest.raises(ModelMismatchError, match="with 3 landmarks needs an output of shape"):
        open_runner(model, heatmap_card(["S", "N", "A"], input_size=(64, 64)))


def test_dynamic_shapes_are_checked_at_warm_up(tmp_path: Path) -> None:
    model = detector_model(
        tmp_path / "m.onnx", input_size=(64, 64), boxes=[], num_classes=2, dynamic_input=True, dynamic_output=True
    )
    runner = open_runner(model, detector_card(["a", "b"], input_size=(96, 48)))
    runner.warm_up()  # any input size fits; the concrete output has 4 + 2 rows
    wrong = open_runner(model, detector_card(["a", "b", "c"], input_size=(96, 48)))
    with pytest.raises(ModelMismatchError, match=r"shape \[1, 6, 1\]; a v8 detector with 3 classes"):
        wrong.warm_up()


# --- preprocessing -----------------------------------------------------------------------------

GEOMETRIES = [  # image width, height; model input width, height; resize
    (2900, 1500, 640, 640, "letterbox"),
    (1935, 2400, 640, 640, "letterbox"),
    (1000, 1000, 640, 640, "letterbox"),
    (2900, 1500, 512, 256, "letterbox"),
    (1935, 2400, 512, 256, "letterbox"),
    (300, 200, 512, 256, "letterbox"),  # enlarged
    (2900, 1500, 512, 256, "stretch"),
]


def test_letterbox_of_a_wide_pano_by_hand() -> None:
    transform, size = plan(2900, 1500, InputSpec(width=640, height=640))
    assert size == (640, 331)  # 1500 · 640/2900 = 331.03
    assert transform.to_model(0, 0) == (0, 154)  # (640 - 331) // 2
    assert transform.to_model(2900, 1500) == pytest.approx((640, 485))
    assert transform.to_original(320, 319.5) == pytest.approx((1450, 750))


def _centroid(profile: npt.NDArray[np.float32]) -> tuple[float, float]:
    """Mass and continuous centre of a dark bar (1 - value) along one line of the input."""
    mass = np.where(profile == 0.5, 0.0, 1.0 - profile)  # 0.5 is the padding, never a uint8 value / 255
    return float(mass.sum()), float(((np.arange(profile.size) + 0.5) * mass).sum() / mass.sum())


@pytest.mark.parametrize(("width", "height", "in_w", "in_h", "resize"), GEOMETRIES)
def test_transform_matches_the_resized_pixels(width: int, height: int, in_w: int, in_h: int, resize: Resize) -> None:
    image = gray(width, height, 255)
    x0, x1, y0, y1 = int(width * 0.3), int(width * 0.55), int(height * 0.4), int(height * 0.8)
    image.pixels[y0:y1, x0:x1] = 0  # a black rectangle on white
    spec = InputSpec(width=in_w, height=in_h, resize=resize, pad_value=0.5)
    batch, transform = prepare(image, spec)
    assert batch.shape == (1, 1, in_h, in_w) and batch.dtype == np.float32

    left, top = transform.to_model(0, 0)
    right, bottom = transform.to_model(width, height)
    content = np.zeros((in_h, in_w), dtype=bool)
    content[round(top) : round(bottom), round(left) : round(right)] = True
    assert np.all(batch[0, 0][~content] == 0.5), "padding where the transform says image"
    assert np.all(batch[0, 0][content] != 0.5), "image where the transform says padding"

    # The rectangle's centre and size, measured in the input, agree with the transform.
    (mx0, my0), (mx1, my1) = transform.to_model(x0, y0), transform.to_model(x1, y1)
    row, col = batch[0, 0, int((my0 + my1) / 2)], batch[0, 0, :, int((mx0 + mx1) / 2)]
    (mass_x, centre_x), (mass_y, centre_y) = _centroid(row), _centroid(col)
    assert centre_x == pytest.approx((mx0 + mx1) / 2, abs=0.1) and mass_x == pytest.approx(mx1 - mx0, abs=0.2)
    assert centre_y == pytest.approx((my0 + my1) / 2, abs=0.1) and mass_y == pytest.approx(my1 - my0, abs=0.2)

    points = np.array([[0, 0], [width, height], [123.25, 456.5], [width / 2, height / 3]])
    there = np.array([transform.to_model(x, y) for x, y in points])
    assert transform.points_to_original(there) == pytest.approx(points, abs=1e-9)


def test_normalisation_of_8_and_12_bit_values() -> None:
    spec = InputSpec(width=64, height=64, pad_value=0.5, mean=(0.1,), std=(0.5,))
    batch, _ = prepare(gray(128, 64, 51), spec)  # 51/255 = 0.2
    assert batch[0, 0, 16:48] == pytest.approx(0.2, abs=1e-6)  # (0.2 - 0.1) / 0.5
    assert batch[0, 0, :16] == pytest.approx(0.8, abs=1e-6)  # (0.5 - 0.1) / 0.5
    for value, expected in [(4095, 1.0), (2048, 2048 / 4095), (0, 0.0), (5000, 1.0)]:
        batch, _ = prepare(gray(64, 64, value, np.uint16), InputSpec(width=32, height=32))
        assert batch == pytest.approx(expected, abs=1e-6), value


def test_three_channels_repeat_gray_with_their_own_mean_and_std() -> None:
    spec = InputSpec(width=32, height=32, channels=3, mean=(0.0, 0.1, 0.2), std=(1.0, 0.5, 0.25), pad_value=0.4)
    batch, _ = prepare(gray(64, 32, 204), spec)  # 0.8
    for channel, (inside, padding) in enumerate([(0.8, 0.4), (1.4, 0.6), (2.4, 0.8)]):
        assert batch[0, channel, 8:24] == pytest.approx(inside, abs=1e-5)
        assert batch[0, channel, :8] == pytest.approx(padding, abs=1e-6)


def test_image_of_the_input_size_is_not_resampled() -> None:
    image = gray(48, 32)
    image.pixels[:] = np.random.default_rng(1).integers(0, 256, (32, 48))
    batch, transform = prepare(image, InputSpec(width=48, height=32))
    assert transform == Transform(1.0, 1.0, 0.0, 0.0, 48, 32)
    assert batch[0, 0] == pytest.approx(image.pixels / 255.0, abs=1e-6)


# --- detection ---------------------------------------------------------------------------------


def _detect(tmp_path: Path, image: DecodedImage, boxes: list[BoxSpec], classes: int, **card: Any) -> list[Any]:
    input_size, layout = card.pop("input_size", (640, 640)), card.pop("layout", "v8")
    model = detector_model(tmp_path / "d.onnx", input_size=input_size, boxes=boxes, num_classes=classes, layout=layout)
    card_layout, resize = ("v5" if layout == "v5" else "v8"), card.pop("resize", "letterbox")
    mapping = detector_card([f"c{i}" for i in range(classes)], input_size=input_size, layout=card_layout, **card)
    mapping["input"]["resize"] = resize
    runner = open_runner(model, mapping)
    output, transform = runner.infer(image)
    assert isinstance(runner.card.output, YoloOutputSpec)
    return decode_yolo(output, runner.card.output, transform, classes)


@pytest.mark.parametrize("layout", ["v8", "v8-transposed", "v5"])
@pytest.mark.parametrize(("width", "height", "in_w", "in_h", "resize"), GEOMETRIES[:4] + GEOMETRIES[-1:])
def test_boxes_come_back_in_original_pixels(
    tmp_path: Path, layout: Layout, width: int, height: int, in_w: int, in_h: int, resize: Resize
) -> None:
    wanted = [  # original-pixel boxes, class, score
        ((0.1 * width, 0.2 * height, 0.3 * width, 0.5 * height), 0, 0.9),
        ((0.5 * width, 0.45 * height, 0.8 * width, 0.9 * height), 2, 0.6),
    ]
    transform, _ = plan(width, height, InputSpec(width=in_w, height=in_h, resize=resize))
    boxes: list[BoxSpec] = []
    for (x1, y1, x2, y2), cls, score in wanted:
        (mx1, my1), (mx2, my2) = transform.to_model(x1, y1), transform.to_model(x2, y2)
        boxes.append(((mx1 + mx2) / 2, (my1 + my2) / 2, mx2 - mx1, my2 - my1, cls, score))
    found = _detect(tmp_path, gray(width, height), boxes, 3, input_size=(in_w, in_h), layout=layout, resize=resize)
    assert [(d.class_index, round(d.score, 5)) for d in found] == [(0, 0.9), (2, 0.6)]
    for detection, (box, _, _) in zip(found, wanted, strict=True):
        assert detection.box == pytest.approx(box, abs=1.0)


def test_nms_is_per_class_and_low_scores_are_dropped(tmp_path: Path) -> None:
    boxes: list[BoxSpec] = [
        (300, 300, 100, 100, 1, 0.8),  # kept
        (310, 305, 100, 100, 1, 0.7),  # same class, IoU ≈ 0.75: suppressed
        (310, 305, 100, 100, 0, 0.6),  # other class, same place: kept
        (500, 500, 50, 50, 1, 0.2),  # below 0.25: dropped
        (100, 500, 50, 50, 0, 0.3),  # alone: kept
    ]
    found = _detect(tmp_path, gray(640, 640), boxes, 2)
    assert [(d.class_index, round(d.score, 5)) for d in found] == [(1, 0.8), (0, 0.6), (0, 0.3)]
    assert found[0].box == pytest.approx((250, 250, 350, 350), abs=1e-3)


@pytest.mark.parametrize(("iou_threshold", "kept"), [(0.6, 2), (0.4, 1)])
def test_iou_threshold_comes_from_the_card(tmp_path: Path, iou_threshold: float, kept: int) -> None:
    boxes: list[BoxSpec] = [(100, 100, 100, 100, 0, 0.9), (133.3333, 100, 100, 100, 0, 0.8)]  # IoU = 0.5
    assert len(_detect(tmp_path, gray(640, 640), boxes, 1, iou_threshold=iou_threshold)) == kept


def test_max_detections_keeps_the_best(tmp_path: Path) -> None:
    boxes: list[BoxSpec] = [(50 + 100 * i, 300, 40, 40, 0, 0.3 + 0.1 * i) for i in range(5)]
    found = _detect(tmp_path, gray(640, 640), boxes, 1, max_detections=3)
    assert [round(d.score, 5) for d in found] == [0.7, 0.6, 0.5]


def test_boxes_are_clipped_to_the_image(tmp_path: Path) -> None:
    # 640×320 letterboxed into 640×640: the image is rows 160-480 of the input.
    boxes: list[BoxSpec] = [(20, 170, 80, 40, 0, 0.9), (300, 60, 40, 40, 0, 0.8)]  # into / wholly in the padding
    found = _detect(tmp_path, gray(640, 320), boxes, 1)
    assert len(found) == 1 and found[0].box == pytest.approx((0, 0, 60, 30), abs=1e-3)


def test_output_of_another_class_count_is_refused() -> None:
    spec = YoloOutputSpec(kind="yolo")
    with pytest.raises(
        ValueError, match=r"needs shape \(1, 7, N\) or \(1, N, 7\) - 7 values per box; got \(1, 6, 10\)"
    ):
        decode_yolo(np.zeros((1, 6, 10), np.float32), spec, Transform(1, 1, 0, 0, 10, 10), 3)


# --- heatmaps ----------------------------------------------------------------------------------


def _landmarks(
    tmp_path: Path, image: DecodedImage, input_size: tuple[int, int], heatmap_size: tuple[int, int],
    peaks: list[tuple[float, float, float]], resize: Resize = "letterbox", min_confidence: float = 0.0,
) -> tuple[list[Any], Transform]:  # fmt: skip
    model = heatmap_model(tmp_path / "h.onnx", input_size=input_size, heatmap_size=heatmap_size, peaks=peaks)
    card = heatmap_card([f"L{i}" for i in range(len(peaks))], input_size=input_size, min_confidence=min_confidence)
    card["input"]["resize"] = resize
    runner = open_runner(model, card)
    output, transform = runner.infer(image)
    return decode_heatmaps(output, transform, input_size, min_confidence), transform


def test_peaks_by_hand_at_stride_1_and_4(tmp_path: Path) -> None:
    found, _ = _landmarks(tmp_path, gray(256, 256), (256, 256), (256, 256), [(100.25, 50.75, 0.9)])
    assert found[0] is not None and (found[0].x, found[0].y) == pytest.approx((100.25, 50.75), abs=0.01)
    found, _ = _landmarks(tmp_path, gray(512, 512), (512, 512), (128, 128), [(10.3, 20.6, 0.9), (0.5, 0.5, 0.9)])
    assert [(p.x, p.y) for p in found if p] == [pytest.approx((41.2, 82.4), abs=0.04), pytest.approx((2, 2), abs=0.04)]


@pytest.mark.parametrize(
    ("width", "height", "input_size", "heatmap_size", "resize", "peaks"),
    [  # peaks in heatmap samples: interior, on a border sample, beyond a border sample's centre
        (2900, 1500, (512, 512), (128, 128), "letterbox", [(40.3, 70.8, 0.9), (0.3, 64.2, 0.8), (127.9, 50.5, 0.7)]),
        (1935, 2400, (256, 512), (64, 128), "stretch", [(31.6, 0.4, 0.9), (63.8, 127.7, 0.8), (12.2, 90.9, 0.7)]),
        (1935, 2400, (512, 512), (512, 512), "letterbox", [(200.1, 300.45, 0.9), (256.0, 511.6, 0.6)]),
    ],
)
def test_peaks_come_back_in_original_pixels(
    tmp_path: Path, width: int, height: int, input_size: tuple[int, int], heatmap_size: tuple[int, int],
    resize: Resize, peaks: list[tuple[float, float, float]],
) -> None:  # fmt: skip
    found, transform = _landmarks(tmp_path, gray(width, height), input_size, heatmap_size, peaks, resize)
    stride_x, stride_y = input_size[0] / heatmap_size[0], input_size[1] / heatmap_size[1]
    for peak, (x, y, value) in zip(found, peaks, strict=True):
        assert peak is not None
        model_x, model_y = transform.to_model(peak.x, peak.y)
        assert (model_x / stride_x, model_y / stride_y) == pytest.approx((x, y), abs=0.02)  # heatmap samples
        assert value * 0.9 < peak.confidence <= value


def test_weak_channel_is_missing(tmp_path: Path) -> None:
    peaks = [(20.0, 20.0, 0.9), (40.0, 40.0, 0.2), (10.0, 50.0, 2.0)]  # the last one is not a probability
    found, _ = _landmarks(tmp_path, gray(256, 256), (256, 256), (64, 64), peaks, min_confidence=0.3)
    assert found[0] is not None and found[1] is None
    assert found[2] is not None and found[2].confidence == 1.0


def test_rotated_elongated_peak_is_exact() -> None:
    rows, cols = np.mgrid[0:40, 0:40] + 0.5
    dx, dy = cols - 20.37, rows - 15.81
    u, v = 0.8 * dx + 0.6 * dy, -0.6 * dx + 0.8 * dy  # 37° rotation, σ 3 along u and 1.2 along v
    maps = np.exp(-(u**2) / 18 - v**2 / 2.88)[None, None].astype(np.float32)
    (peak,) = decode_heatmaps(maps, Transform(1, 1, 0, 0, 40, 40), (40, 40), 0.0)
    assert peak is not None and (peak.x, peak.y) == pytest.approx((20.37, 15.81), abs=0.01)


def test_single_sample_spike_stays_on_its_sample() -> None:
    maps = np.zeros((1, 2, 16, 16), dtype=np.float32)
    maps[0, 0, 5, 9] = 0.7
    maps[0, 1] = np.nan
    peak, missing = decode_heatmaps(maps, Transform(0.5, 0.5, 0, 0, 32, 32), (16, 16), 0.0)
    assert peak is not None and (peak.x, peak.y, peak.confidence) == pytest.approx((19, 11, 0.7))
    assert missing is None


def test_heatmap_output_of_another_rank_is_refused() -> None:
    with pytest.raises(ValueError, match=r"shape \(1, K, h, w\); got \(1, 16, 16\)"):
        decode_heatmaps(np.zeros((1, 16, 16), np.float32), Transform(1, 1, 0, 0, 16, 16), (16, 16), 0.0)
