"""pipelines.decode / pipelines.dicom on real files: images Pillow makes here, and pydicom's bundled samples.

Only samples that ship inside the pydicom wheel are used (`download=False`): nothing is fetched at test time.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels.utils import pixel_array

from pipelines.decode import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_image
from pipelines.image import DecodedImage, SpacingSource
from tests.support.images import (
    dicom_file_bytes,
    dicom_without_pixel_data,
    png_claiming_size,
    sample_dataset,
    sample_dicom_bytes,
)

# --- helpers -----------------------------------------------------------------------------------------


def _gradient(width: int = 64, height: int = 48) -> npt.NDArray[np.uint8]:
    y, x = np.mgrid[0:height, 0:width]
    gradient: npt.NDArray[np.uint8] = ((x * 7 + y * 3) % 256).astype(np.uint8)
    return gradient


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _decode_ds(ds: Dataset) -> DecodedImage:
    return decode_image(dicom_file_bytes(ds), ".dcm")


# --- JPEG / PNG / BMP ----------------------------------------------------------------------------------


def test_jpeg_8bit_grey() -> None:
    source = _gradient()
    data = _encode(Image.fromarray(source), "JPEG", quality=95)
    image = decode_image(data, ".jpg")
    assert (image.pixels.dtype.name, image.pixels.shape, image.bits_stored) == ("uint8", (48, 64), 8)
    assert (image.source_format, image.spacing, image.size_bytes) == ("jpeg", None, len(data))
    assert np.abs(image.pixels.astype(int) - source).mean() < 3  # lossy, but the same picture
    assert not image.pixels.flags.writeable
    assert np.array_equal(decode_image(data, ".jpeg").pixels, image.pixels)


def test_multi_picture_jpeg_gives_its_first_picture() -> None:
    # phones and some scanners write MPF JPEGs, which Pillow reports as "MPO": still a .jpg
    buffer = io.BytesIO()
    first, second = Image.new("L", (32, 16), 40), Image.new("L", (32, 16), 200)
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    image = decode_image(buffer.getvalue(), ".jpg")
    assert (image.source_format, image.pixels.shape) == ("jpeg", (16, 32))
    assert abs(int(image.pixels.mean()) - 40) <= 1


@pytest.mark.parametrize(("fmt", "extension", "name"), [("PNG", ".png", "png"), ("BMP", ".bmp", "bmp")])
def test_lossless_8bit_grey_is_exact(fmt: str, extension: str, name: str) -> None:
    source = _gradient()
    image = decode_image(_encode(Image.fromarray(source), fmt), extension)
    assert (image.source_format, image.bits_stored, image.pixels.dtype.name) == (name, 8, "uint8")
    assert np.array_equal(image.pixels, source)


def test_png_16bit_values_are_preserved() -> None:
    source = (np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) * 21 + 7).astype(np.uint16)
    source[0, 0], source[-1, -1] = 0, 65535
    image = decode_image(_encode(Image.fromarray(source), "PNG"), ".png")
    assert (image.pixels.dtype.name, image.bits_stored) == ("uint16", 16)
    assert np.array_equal(image.pixels, source)


def test_colour_becomes_luminance() -> None:
    picture = Image.new("RGB", (4, 1))
    for x, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]):
        picture.putpixel((x, 0), colour)
    image = decode_image(_encode(picture, "PNG"), ".png")
    assert image.pixels.tolist() == [[76, 150, 29, 255]]  # ITU-R 601 weights
    assert image.bits_stored == 8


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA", "1"])
def test_other_modes_match_pillows_grey(mode: str) -> None:
    rgb = np.stack([_gradient(), _gradient()[::-1], np.full((48, 64), 90, np.uint8)], axis=-1)
    picture = Image.fromarray(rgb).convert(mode)
    image = decode_image(_encode(picture, "PNG"), ".png")
    assert image.pixels.dtype == np.uint8
    assert np.array_equal(image.pixels, np.asarray(picture.convert("L")))


def test_rgb_jpeg_gives_the_luminance_of_its_colours() -> None:
    rgb = np.stack([_gradient(), _gradient()[::-1], np.full((48, 64), 200, np.uint8)], axis=-1)
    source_grey = np.asarray(Image.fromarray(rgb).convert("L")).astype(int)
    data = _encode(Image.fromarray(rgb), "JPEG", quality=95)
    with Image.open(io.BytesIO(data)) as decoded:
        via_rgb = np.asarray(decoded.convert("L")).astype(int)
    image = decode_image(data, ".jpg")
    assert (image.pixels.shape, image.pixels.dtype.name) == ((48, 64), "uint8")
    # The JPEG's own Y plane: the same as RGB → L except next to sharp colour edges, where RGB
    # clipping after chroma upsampling makes RGB → L the less faithful of the two.
    assert np.mean(np.abs(image.pixels - via_rgb) <= 1) > 0.95
    assert np.abs(image.pixels - source_grey).mean() < 1.5
    assert np.abs(image.pixels - source_grey).max() <= 10


@pytest.mark.parametrize("keep_rgb", [False, True])  # YCbCr-encoded, and RGB stored as is (Adobe)
def test_colour_jpeg_luminance_per_encoding(keep_rgb: bool) -> None:
    rgb = np.zeros((16, 32, 3), np.uint8)
    rgb[:, :16] = (255, 0, 0)
    rgb[:, 16:] = (255, 255, 0)
    image = decode_image(_encode(Image.fromarray(rgb), "JPEG", quality=100, keep_rgb=keep_rgb), ".jpg")
    assert abs(int(image.pixels[8, 4]) - 76) <= 1  # red
    assert abs(int(image.pixels[8, 28]) - 226) <= 1  # yellow


def test_cmyk_jpeg_becomes_grey() -> None:
    data = _encode(Image.new("CMYK", (16, 16), (0, 0, 0, 128)), "JPEG", quality=95)
    image = decode_image(data, ".jpg")
    assert image.pixels.shape == (16, 16)
    assert abs(int(image.pixels[8, 8]) - 127) <= 2


@pytest.mark.parametrize(("orientation", "block_rows", "block_cols"), [(6, (0, 16), (32, 48)), (8, (48, 64), (0, 16))])
def test_exif_orientation_is_applied(
    orientation: int, block_rows: tuple[int, int], block_cols: tuple[int, int]
) -> None:
    source = np.zeros((48, 64), np.uint8)
    source[:16, :16] = 255  # a bright block at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = orientation  # 6: display rotated 90° clockwise; 8: counter-clockwise
    image = decode_image(_encode(Image.fromarray(source), "JPEG", quality=95, exif=exif.tobytes()), ".jpg")
    assert image.pixels.shape == (64, 48)
    block = image.pixels[block_rows[0] : block_rows[1], block_cols[0] : block_cols[1]]
    assert block.min() > 200
    assert image.pixels[8, 8] < 50  # and it is no longer at the top-left


def test_exif_orientation_keeps_16bit_values() -> None:
    source = np.zeros((48, 64), np.uint16)
    source[0, 1] = 12345
    exif = Image.Exif()
    exif[0x0112] = 6
    image = decode_image(_encode(Image.fromarray(source), "PNG", exif=exif.tobytes()), ".png")
    assert image.pixels.shape == (64, 48)
    assert np.argwhere(image.pixels == 12345).tolist() == [[1, 47]]


# --- refusals ------------------------------------------------------------------------------------------


def test_png_bomb_header_is_refused_before_decoding() -> None:
    # 900 Mpx claimed by a 70-byte file: refused at the header, or decoding would report "truncated".
    with pytest.raises(ImageDecodeError, match="^image too large"):
        decode_image(png_claiming_size(30000, 30000), ".png")


def test_oversized_header_below_pillows_hard_limit_hits_our_limit() -> None:
    # 120 Mpx: Pillow only warns here (warnings are errors in this suite), our own check refuses.
    with pytest.raises(ImageDecodeError, match=r"^image too large: 12000 x 10000 pixels exceeds the 50000000-pixel"):
        decode_image(png_claiming_size(12000, 10000), ".png")
    assert DEFAULT_MAX_PIXELS == 50_000_000


def test_max_pixels_is_honoured() -> None:
    data = _encode(Image.fromarray(np.zeros((100, 100), np.uint8)), "PNG")
    assert decode_image(data, ".png", max_pixels=10_000).width == 100
    with pytest.raises(ImageDecodeError, match="100 x 100 pixels exceeds the 9999-pixel limit"):
        decode_image(data, ".png", max_pixels=9_999)


def test_zero_size_png_is_refused() -> None:
    with pytest.raises(ImageDecodeError, match="not a valid PNG"):
        decode_image(png_claiming_size(0, 1), ".png")


@pytest.mark.parametrize(("fmt", "extension"), [("JPEG", ".jpg"), ("PNG", ".png")])
def test_truncated_image_is_refused(fmt: str, extension: str) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (200, 300), dtype=np.uint8)  # incompressible
    data = _encode(Image.fromarray(noise), fmt)
    assert decode_image(data, extension).width == 300
    with pytest.raises(ImageDecodeError, match="^image is truncated$"):
        decode_image(data[: len(data) // 2], extension)


_JPEG = _encode(Image.fromarray(_gradient()), "JPEG")
_PNG = _encode(Image.fromarray(_gradient()), "PNG")


@pytest.mark.parametrize(
    ("data", "extension", "message"),
    [
        (_JPEG, ".png", "file is not a valid PNG image"),
        (_PNG, ".jpg", "file is not a valid JPEG image"),
        (_PNG, ".bmp", "file is not a valid BMP image"),
        (b"<!DOCTYPE html><html><body>hi</body></html>", ".jpg", "file is not a valid JPEG image"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', ".jpeg", "file is not a valid JPEG image"),
        (
            b"%PDF-1.7\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF",
            ".jpg",
            "file is not a valid JPEG image",
        ),
        (b"", ".png", "file is not a valid PNG image"),
        (_JPEG, ".gif", "unsupported file type: expected .jpg, .jpeg, .png, .bmp or .dcm"),
        (_JPEG, "", "unsupported file type: expected .jpg, .jpeg, .png, .bmp or .dcm"),
        (_JPEG, ".dcm", "file is not a DICOM file (no DICM marker)"),
    ],
)
def test_wrong_content_for_extension_is_refused(data: bytes, extension: str, message: str) -> None:
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(data, extension)
    assert str(caught.value) == message  # exact: no paths, object reprs or library wording leak


def test_unexpected_decoder_failure_becomes_a_generic_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_args: object, **_kwargs: object) -> Image.Image:
        raise RuntimeError("internal detail /srv/secret")

    monkeypatch.setattr(Image, "open", explode)
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(_PNG, ".png")
    assert str(caught.value) == "image could not be decoded"
    assert isinstance(caught.value.__cause__, RuntimeError)  # kept for the worker's log


def test_memory_error_is_not_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    def exhausted(*_args: object, **_kwargs: object) -> Image.Image:
        raise MemoryError

    monkeypatch.setattr(Image, "open", exhausted)
    with pytest.raises(MemoryError):
        decode_image(_PNG, ".png")


# --- DICOM: refusals -----------------------------------------------------------------------------------


def test_dicom_without_magic_is_refused() -> None:
    data = sample_dicom_bytes("MR_small.dcm")
    for variant in (data[132:], data[:128] + b"XXXX" + data[132:], sample_dicom_bytes("ExplVR_LitEndNoMeta.dcm")):
        with pytest.raises(ImageDecodeError, match=r"^file is not a DICOM file \(no DICM marker\)$"):
            decode_image(variant, ".dcm")


def test_dicom_without_pixel_data_is_refused() -> None:
    with pytest.raises(ImageDecodeError, match="^DICOM file has no pixel data$"):
        decode_image(dicom_without_pixel_data("MR_small.dcm"), ".dcm")


@pytest.mark.parametrize("name", ["MR_truncated.dcm", "JPEG-lossy.dcm"])
def test_undecodable_dicom_pixels_are_refused(name: str) -> None:
    # MR_truncated: pixel data shorter than Rows x Columns; JPEG-lossy: a codestream no plugin accepts.
    with pytest.raises(ImageDecodeError, match="^DICOM pixel data could not be decoded$"):
        decode_image(sample_dicom_bytes(name), ".dcm")


def test_dicom_size_is_checked_from_the_header() -> None:
    ds = sample_dataset("MR_small.dcm")
    with pytest.raises(ImageDecodeError, match="64 x 64 pixels exceeds the 4095-pixel limit"):
        decode_image(dicom_file_bytes(ds), ".dcm", max_pixels=4095)
    ds.Rows = 0
    with pytest.raises(ImageDecodeError, match="^image has no pixels$"):
        _decode_ds(ds)


def test_palette_colour_dicom_is_refused() -> None:
    with pytest.raises(ImageDecodeError, match="unsupported DICOM photometric interpretation"):
        decode_image(sample_dicom_bytes("examples_palette.dcm"), ".dcm")


# --- DICOM: transfer syntaxes and frames ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "syntax"),
    [
        ("MR_small_implicit.dcm", "1.2.840.10008.1.2"),
        ("MR_small_bigendian.dcm", "1.2.840.10008.1.2.2"),
        ("MR_small_RLE.dcm", "1.2.840.10008.1.2.5"),
        ("MR_small_jp2klossless.dcm", "1.2.840.10008.1.2.4.90"),
        ("MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80"),
    ],
)
def test_lossless_transfer_syntaxes_decode_identically(name: str, syntax: str) -> None:
    reference = decode_image(sample_dicom_bytes("MR_small.dcm"), ".dcm")  # explicit VR little endian
    assert sample_dataset("MR_small.dcm").file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert sample_dataset(name).file_meta.TransferSyntaxUID == syntax
    image = decode_image(sample_dicom_bytes(name), ".dcm")
    assert (image.pixels.shape, image.pixels.dtype.name, image.bits_stored) == ((64, 64), "uint16", 16)
    assert np.array_equal(image.pixels, reference.pixels)


def test_colour_dicom_in_rle_jpeg_and_jpeg2000() -> None:
    reference = decode_image(sample_dicom_bytes("SC_rgb_rle.dcm"), ".dcm").pixels
    # the sample is horizontal colour bars: red, green, blue, …, so its luminance is known exactly
    assert (reference[0, 0], reference[20, 0], reference[40, 0]) == (76, 150, 29)
    for lossless in ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb_gdcm_KY.dcm"):  # JPEG lossless (.70), JPEG 2000 (.91)
        assert np.array_equal(decode_image(sample_dicom_bytes(lossless), ".dcm").pixels, reference)
    # JPEG baseline stored as YBR_FULL: converted to RGB by pydicom, then to luminance; lossy, so close
    baseline = decode_image(sample_dicom_bytes("SC_rgb_jpeg_dcmtk.dcm"), ".dcm")
    assert sample_dataset("SC_rgb_jpeg_dcmtk.dcm").PhotometricInterpretation == "YBR_FULL"
    assert baseline.pixels.dtype == np.uint8
    assert np.abs(baseline.pixels.astype(int) - reference).max() <= 8


def test_16bit_colour_dicom_keeps_16_bits() -> None:
    image = decode_image(sample_dicom_bytes("SC_rgb_rle_16bit.dcm"), ".dcm")
    eight = decode_image(sample_dicom_bytes("SC_rgb_rle.dcm"), ".dcm")
    assert (image.pixels.dtype.name, image.bits_stored) == ("uint16", 16)
    assert np.abs(image.pixels.astype(int) - eight.pixels.astype(int) * 257).max() <= 257


def test_jpeg2000_without_window_uses_the_full_data_range() -> None:
    ds = sample_dataset("JPEG2000.dcm")
    assert "WindowCenter" not in ds and "RescaleSlope" not in ds
    stored = ds.pixel_array.astype(np.float64)
    expected = np.rint((stored - stored.min()) * 65535 / (stored.max() - stored.min()))
    image = decode_image(sample_dicom_bytes("JPEG2000.dcm"), ".dcm")
    assert image.pixels.shape == (1024, 256)
    assert np.abs(image.pixels.astype(np.float64) - expected).max() <= 1


def test_multi_frame_gives_the_first_frame() -> None:
    single = sample_dataset("MR_small.dcm")
    first = single.pixel_array
    second = np.ascontiguousarray(first[::-1, ::-1])
    multi = sample_dataset("MR_small.dcm")
    multi.NumberOfFrames = 2
    multi.PixelData = first.tobytes() + second.tobytes()
    image = _decode_ds(multi)
    assert np.array_equal(image.pixels, decode_image(dicom_file_bytes(single), ".dcm").pixels)
    single.PixelData = second.tobytes()
    assert not np.array_equal(image.pixels, _decode_ds(single).pixels)


def test_multi_frame_colour_sample_gives_the_first_frame() -> None:
    two_frames = sample_dataset("SC_rgb_rle_2frame.dcm")
    assert not np.array_equal(pixel_array(two_frames, index=0), pixel_array(two_frames, index=1))
    image = decode_image(sample_dicom_bytes("SC_rgb_rle_2frame.dcm"), ".dcm")
    assert np.array_equal(image.pixels, decode_image(sample_dicom_bytes("SC_rgb_rle.dcm"), ".dcm").pixels)


# --- DICOM: grey-level pipeline -------------------------------------------------------------------------


def _monochrome1() -> Dataset:
    # A CR with MONOCHROME1, rescale (0.684, +200) and a window: the only such sample bundled offline
    ds = sample_dataset("6154")
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    return ds


def test_monochrome1_is_inverted_exactly_once() -> None:
    ds = _monochrome1()
    as_m1 = _decode_ds(ds).pixels.astype(np.int64)
    ds.PhotometricInterpretation = "MONOCHROME2"
    as_m2 = _decode_ds(ds).pixels.astype(np.int64)
    assert np.all(as_m1 + as_m2 == 65535)
    assert as_m1.std() > 0
    stored = _monochrome1().pixel_array
    assert as_m1.flat[stored.argmin()] == as_m1.max()  # lowest stored value is the brightest in M1


@pytest.mark.parametrize(
    ("photometric", "shape", "inverted"),
    [("MONOCHROME1", "INVERSE", True), ("MONOCHROME1", "IDENTITY", True), ("MONOCHROME2", "INVERSE", True)],
)
def test_presentation_lut_shape_never_double_inverts(photometric: str, shape: str, inverted: bool) -> None:
    plain = _monochrome1()
    plain.PhotometricInterpretation = "MONOCHROME2"
    upright = _decode_ds(plain).pixels.astype(np.int64)
    ds = _monochrome1()
    ds.PhotometricInterpretation = photometric
    ds.PresentationLUTShape = shape
    result = _decode_ds(ds).pixels.astype(np.int64)
    assert np.array_equal(result, 65535 - upright if inverted else upright)


def _expected_window(hu: npt.NDArray[np.float64], center: float, width: float) -> npt.NDArray[np.float64]:
    # PS3.3 C.11.2.1.2.1 (LINEAR), mapped onto 0..65535
    c, w = center - 0.5, width - 1
    return np.rint(np.clip((hu - c) / w + 0.5, 0, 1) * 65535)


@pytest.mark.parametrize("intercept_shift", [0.0, 500.0])
def test_rescale_then_window(intercept_shift: float) -> None:
    ds = sample_dataset("CT_small.dcm")
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept) + intercept_shift
    ds.RescaleIntercept = intercept
    ds.WindowCenter, ds.WindowWidth = 40, 400
    hu = ds.pixel_array.astype(np.float64) * slope + intercept
    expected = _expected_window(hu, 40, 400)
    pixels = _decode_ds(ds).pixels
    below, above = hu <= 40 - 0.5 - 399 / 2, hu > 40 - 0.5 + 399 / 2
    assert below.any() and above.any() and (~below & ~above).any()  # all three regions present
    assert np.all(pixels[below] == 0) and np.all(pixels[above] == 65535)
    assert np.abs(pixels.astype(np.float64) - expected).max() <= 1


def test_rescale_changes_the_windowed_result() -> None:
    ds = sample_dataset("CT_small.dcm")
    ds.WindowCenter, ds.WindowWidth = 40, 400
    original = _decode_ds(ds).pixels
    ds.RescaleIntercept = float(ds.RescaleIntercept) + 500
    assert int((original != _decode_ds(ds).pixels).sum()) > original.size // 4


def test_voi_lut_sequence_wins_over_window_and_uses_its_own_range() -> None:
    ds = sample_dataset("MR_small.dcm")
    assert "WindowCenter" in ds
    stored = ds.pixel_array.astype(np.int64)
    first, count = int(stored.min()), int(stored.max() - stored.min() + 1)
    lut = np.rint(np.arange(count) * 4095 / (count - 1)).astype(np.uint16)  # declared 16-bit, filled to 12
    assert first >= 0
    item = Dataset()
    item.add_new(0x00283002, "US", [count, first, 16])  # LUTDescriptor; US or SS, ambiguous
    item.add_new(0x00283006, "US", lut.tolist())  # LUTData; US or OW, ambiguous
    ds.VOILUTSequence = [item]
    pixels = _decode_ds(ds).pixels
    expected = np.rint(lut[stored - first].astype(np.float64) * 65535 / 4095)
    assert pixels.max() == 65535 and pixels.min() == 0
    assert np.abs(pixels.astype(np.float64) - expected).max() <= 1


def test_malformed_window_falls_back_to_the_full_range() -> None:
    ds = sample_dataset("MR_small.dcm")
    ds.WindowWidth = 0  # LINEAR needs width >= 1
    stored = ds.pixel_array.astype(np.float64)
    expected = np.rint((stored - stored.min()) * 65535 / (stored.max() - stored.min()))
    assert np.abs(_decode_ds(ds).pixels.astype(np.float64) - expected).max() <= 1


def test_8bit_dicom_gives_8bit_output() -> None:
    image = decode_image(sample_dicom_bytes("liver_1frame.dcm"), ".dcm")  # BitsStored 1: packed bits
    assert (image.pixels.dtype.name, image.bits_stored) == ("uint8", 8)
    assert set(np.unique(image.pixels).tolist()) == {0, 255}
    assert not image.pixels.flags.writeable


# --- DICOM: pixel spacing ------------------------------------------------------------------------------

_Tags = dict[str, object]


def _with_spacing_tags(tags: _Tags) -> Dataset:
    ds = sample_dataset("MR_small.dcm")
    del ds.PixelSpacing
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"PixelSpacing": [0.1, 0.2], "PixelSpacingCalibrationType": "FIDUCIAL"}, (0.1, 0.2, "calibrated")),
        (
            {"PixelSpacing": [0.1, 0.2], "PixelSpacingCalibrationType": "GEOMETRY"},
            (0.1, 0.2, "magnification-corrected"),
        ),
        (
            {"ImagerPixelSpacing": [0.15, 0.3], "EstimatedRadiographicMagnificationFactor": 1.25},
            (0.12, 0.24, "magnification-corrected"),
        ),
        ({"ImagerPixelSpacing": [0.15, 0.3]}, (0.15, 0.3, "detector")),
        ({"PixelSpacing": [0.1, 0.2]}, (0.1, 0.2, "unknown")),
        ({}, None),
        # DOMAIN.md order: the detector plane outranks a PixelSpacing of unknown calibration
        ({"PixelSpacing": [0.1, 0.1], "ImagerPixelSpacing": [0.15, 0.15]}, (0.15, 0.15, "detector")),
        (
            {
                "PixelSpacing": [0.1, 0.1],
                "PixelSpacingCalibrationType": "FIDUCIAL",
                "ImagerPixelSpacing": [0.15, 0.15],
                "EstimatedRadiographicMagnificationFactor": 1.1,
            },
            (0.1, 0.1, "calibrated"),
        ),
        # invalid values count as absent
        (
            {"PixelSpacing": [0, 0.1], "PixelSpacingCalibrationType": "FIDUCIAL", "ImagerPixelSpacing": [0.2, 0.2]},
            (0.2, 0.2, "detector"),
        ),
        ({"ImagerPixelSpacing": [0.2, 0.2], "EstimatedRadiographicMagnificationFactor": 0}, (0.2, 0.2, "detector")),
        ({"PixelSpacing": [-0.1, -0.1]}, None),
        ({"PixelSpacing": 0.1}, None),  # one value where two are required
    ],
)
def test_spacing_source_table(tags: _Tags, expected: tuple[float, float, str] | None) -> None:
    spacing = _decode_ds(_with_spacing_tags(tags)).spacing
    if expected is None:
        assert spacing is None
        return
    assert spacing is not None
    assert (spacing.row_mm, spacing.col_mm) == pytest.approx(expected[:2])
    assert spacing.source == SpacingSource(expected[2])


@pytest.mark.parametrize(("extra", "expected"), [({}, None), ({"ImagerPixelSpacing": [0.2, 0.2]}, "detector")])
def test_unparseable_spacing_text_counts_as_absent(extra: _Tags, expected: str | None) -> None:
    ds = _with_spacing_tags({"PixelSpacing": [0.5, 0.5], "PixelSpacingCalibrationType": "FIDUCIAL", **extra})
    data = dicom_file_bytes(ds)
    assert data.count(b"0.5\\0.5 ") == 1
    image = decode_image(data.replace(b"0.5\\0.5 ", b"abc\\0.5 "), ".dcm")  # same length, not a number
    assert (None if image.spacing is None else image.spacing.source.value) == expected


def test_sample_spacings() -> None:
    ct = decode_image(sample_dicom_bytes("CT_small.dcm"), ".dcm").spacing
    assert ct is not None
    assert ct.source == SpacingSource.UNKNOWN
    assert ct.row_mm == pytest.approx(0.661468)
    cr = _decode_ds(_monochrome1()).spacing  # ImagerPixelSpacing only
    assert cr is not None and (cr.row_mm, cr.col_mm, cr.source) == (0.1, 0.1, SpacingSource.DETECTOR)
