"""DICOM bytes → display-ready grey levels and a pixel spacing with its source (DOMAIN.md, DICOM).

Grey levels follow the standard's display pipeline (PS3.4 N.2): stored values → modality LUT or
rescale → VOI LUT or window → MONOCHROME1 / INVERSE inversion, exactly once → output depth.
Only the first frame of a multi-frame object is decoded. Nothing read from the header is logged or
put in a message: DICOM headers carry patient data.
"""

from __future__ import annotations

import io
import math
from typing import Final, cast

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels.processing import apply_modality_lut, apply_voi, apply_windowing
from pydicom.pixels.utils import pixel_array

from pipelines.decode import ImageDecodeError, check_dimensions
from pipelines.image import DecodedImage, PixelSpacing, SpacingSource

_MAGIC_OFFSET: Final = 128  # PS3.10 7.1: 128-byte preamble, then "DICM"
_PIXEL_KEYWORDS: Final = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_GREY: Final = frozenset({"MONOCHROME1", "MONOCHROME2"})
# pydicom returns YBR_FULL(_422) as RGB, and the JPEG 2000 decoders undo RCT/ICT themselves.
_COLOUR: Final = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT"})
_LUMA: Final = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's "L"

Pixels = npt.NDArray[np.uint8] | npt.NDArray[np.uint16]


def decode_dicom(data: bytes, max_pixels: int) -> DecodedImage:
    """Decode a DICOM Part 10 file; raises ImageDecodeError for anything this service cannot read."""
    if data[_MAGIC_OFFSET : _MAGIC_OFFSET + 4] != b"DICM":
        # Never force=True: without the magic, any bytes "parse" as some dataset.
        raise ImageDecodeError("file is not a DICOM file (no DICM marker)")
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, ValueError, KeyError) as exc:
        raise ImageDecodeError("DICOM file is malformed") from exc
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        raise ImageDecodeError("DICOM file has no pixel data")
    check_dimensions(int(ds.get("Columns") or 0), int(ds.get("Rows") or 0), max_pixels)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric not in _GREY | _COLOUR:
        raise ImageDecodeError("unsupported DICOM photometric interpretation")
    try:
        stored = pixel_array(ds, index=0)  # index=0: decode the first frame only, not the whole cine
    except (ValueError, NotImplementedError, RuntimeError, AttributeError) as exc:
        # bytes short of Rows x Columns, no plugin for the transfer syntax, or a broken codestream
        raise ImageDecodeError("DICOM pixel data could not be decoded") from exc

    # BitsStored > 8 (12-bit DX, 16-bit CT, float data) keeps 16 bits of output; else 8 is all there is.
    depth = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    dtype: type[np.uint8] | type[np.uint16] = np.uint16 if depth > 8 else np.uint8
    if photometric in _COLOUR and stored.ndim == 3:
        # Colour (secondary capture, photographed films): the grey a viewer would show. It is
        # already display-ready, so its nominal range maps onto the output without stretching.
        pixels = _quantise(stored @ _LUMA, 0.0, float(2**depth - 1), dtype)
    elif photometric in _GREY and stored.ndim == 2:
        pixels = _display_grey(stored, ds, photometric, dtype)
    else:
        raise ImageDecodeError("DICOM pixel data has an unexpected shape")
    pixels.flags.writeable = False
    return DecodedImage(
        pixels=pixels,
        source_format="dicom",
        spacing=pixel_spacing(ds),
        bits_stored=16 if depth > 8 else 8,
        size_bytes=len(data),
    )


def _display_grey(
    stored: npt.NDArray[np.generic], ds: Dataset, photometric: str, dtype: type[np.uint8] | type[np.uint16]
) -> Pixels:
    values = apply_modality_lut(stored, ds)
    windowed, low, high = _apply_voi(values, ds)
    pixels = _quantise(windowed, low, high, dtype)
    # MONOCHROME1 means "low = white"; a Presentation LUT Shape INVERSE says the same thing (DX
    # requires it alongside MONOCHROME1), so either triggers the one inversion, never both.
    # Inverting the integers is exact, so M1 and the same data labelled M2 are exact complements.
    shape = str(ds.get("PresentationLUTShape", "")).strip().upper()
    if photometric == "MONOCHROME1" or shape == "INVERSE":
        np.subtract(np.iinfo(dtype).max, pixels, out=pixels)
    return pixels


def _apply_voi(values: npt.NDArray[np.generic], ds: Dataset) -> tuple[npt.NDArray[np.generic], float, float]:
    """The VOI transform with the range its output can span (not the range this image happens to use).

    Preference as in pydicom's apply_voi_lut: a VOI LUT, else the window, else nothing, in which case
    the image's own min–max is the range. A malformed LUT or window (width < 1, unknown function)
    falls back to that too: it should not cost the client an otherwise readable image.
    """
    if ds.get("VOILUTSequence"):
        try:
            descriptor = ds.VOILUTSequence[0].LUTDescriptor
            # Output range from the LUT's entries, not its nominal depth: vendors often declare 16
            # bits and fill 12, which would leave the image at 1/16 of the brightness.
            entries = apply_voi(np.arange(descriptor[1], descriptor[1] + (descriptor[0] or 65536)), ds)
            return apply_voi(values, ds), float(entries.min()), float(entries.max())
        except (ValueError, NotImplementedError, AttributeError, IndexError, TypeError):
            pass
    if "WindowCenter" in ds and "WindowWidth" in ds:
        try:
            # Probing with ±inf yields exactly pydicom's saturation levels (y_min, y_max) for every
            # VOI function and rescale, without re-deriving them here.
            low, high = apply_windowing(np.array([-np.inf, np.inf]), ds)
            return apply_windowing(values, ds), float(low), float(high)
        except (ValueError, NotImplementedError, AttributeError, IndexError, TypeError):
            pass
    return values, float(values.min()), float(values.max())


def _quantise(
    values: npt.NDArray[np.generic], low: float, high: float, dtype: type[np.uint8] | type[np.uint16]
) -> Pixels:
    """Map [low, high] linearly onto the dtype's full range, clipping; one float buffer, one cast."""
    top = np.iinfo(dtype).max
    if not math.isfinite(high - low) or high == low:
        return cast(Pixels, np.zeros(values.shape, dtype=dtype))
    # Every array reaching here is fresh from the decoder or a LUT step, so a float one is reused in place.
    work = values if values.dtype.kind == "f" and values.flags.writeable else values.astype(np.float32)
    np.subtract(work, low, out=work)
    np.multiply(work, top / (high - low), out=work)
    np.clip(work, 0, top, out=work)
    np.rint(work, out=work)
    return cast(Pixels, work.astype(dtype))


def pixel_spacing(ds: Dataset) -> PixelSpacing | None:
    """Millimetres per pixel, [row, col], from the most trustworthy source present (DOMAIN.md order)."""
    pixel = _positive_pair(ds, "PixelSpacing")
    imager = _positive_pair(ds, "ImagerPixelSpacing")
    calibration = str(ds.get("PixelSpacingCalibrationType", "")).strip().upper()
    if pixel is not None and calibration == "FIDUCIAL":
        return PixelSpacing(pixel[0], pixel[1], SpacingSource.CALIBRATED)
    if pixel is not None and calibration == "GEOMETRY":
        return PixelSpacing(pixel[0], pixel[1], SpacingSource.MAGNIFICATION_CORRECTED)
    if imager is not None:
        factor = _positive(ds.get("EstimatedRadiographicMagnificationFactor"))
        if factor is not None:  # detector spacing scaled back to the patient plane
            return PixelSpacing(imager[0] / factor, imager[1] / factor, SpacingSource.MAGNIFICATION_CORRECTED)
        return PixelSpacing(imager[0], imager[1], SpacingSource.DETECTOR)
    if pixel is not None:
        return PixelSpacing(pixel[0], pixel[1], SpacingSource.UNKNOWN)
    return None


def _positive_pair(ds: Dataset, keyword: str) -> tuple[float, float] | None:
    """Both values of a [row, col] spacing, or None when absent, malformed, zero or negative."""
    try:
        # absent (None) or a single value: TypeError; three values or DS text like "abc": ValueError
        first, second = ds.get(keyword)
    except (ValueError, TypeError):
        return None
    row, col = _positive(first), _positive(second)
    return None if row is None or col is None else (row, col)


def _positive(value: object) -> float | None:
    try:
        number = float(str(value))  # DSfloat, IS, plain numbers or text alike; None fails like "abc"
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None
