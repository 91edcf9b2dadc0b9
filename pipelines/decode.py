"""Uploaded image bytes → `DecodedImage`: format check, size limit, orientation, grey levels.

This runs in the worker on untrusted bytes, so every failure the client can cause comes out as one
exception whose message is safe to put in a task result:

    Exception
     └── ImageDecodeError   not the format its extension claims, truncated, corrupt, too large,
                            empty, unsupported (message: one short sentence, no paths or internals)
    MemoryError             not converted: the worker is in trouble, not the client's file

JPEG, PNG and BMP go through Pillow here; DICOM goes through pydicom in `pipelines.dicom`.
"""

from __future__ import annotations

import io
import warnings
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from pipelines.image import DecodedImage

# Dental radiographs are small: a panoramic is ~3000 x 1500, a ceph ~2000 x 2500, a scanned film
# rarely above 6000 x 4000 (24 Mpx). 50 Mpx leaves twice that headroom, while the worst case (an RGB
# JPEG, which Pillow holds at 4 bytes a pixel, plus its grey copy) stays near 250 MB per task. It
# is also below Pillow's own DecompressionBomb thresholds, so with the default only our check fires.
DEFAULT_MAX_PIXELS: Final = 50_000_000

# extension → (our format name, the Pillow formats that may open it, the `Image.format` values accepted).
# Restricting `Image.open` to one plugin is both the magic-number check and a smaller attack surface.
# A JPEG carrying an MPF header (many cameras and phones) opens as Pillow's "MPO", still a JPEG.
_PILLOW_FORMATS: Final[dict[str, tuple[str, tuple[str, ...], frozenset[str]]]] = {
    ".jpg": ("jpeg", ("JPEG",), frozenset({"JPEG", "MPO"})),
    ".jpeg": ("jpeg", ("JPEG",), frozenset({"JPEG", "MPO"})),
    ".png": ("png", ("PNG",), frozenset({"PNG"})),
    ".bmp": ("bmp", ("BMP",), frozenset({"BMP"})),
}
_SIXTEEN_BIT_MODES: Final = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


class ImageDecodeError(Exception):
    """The uploaded bytes are not an image this service can read; the message is client-safe."""


def decode_image(data: bytes, extension: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode `data` as the format its (lowercase, dotted) `extension` names, refusing anything else.

    Pixels come back grayscale, uint8 or uint16, display-ready (white = dense) and read-only, so no
    pipeline can change what another part of the task still looks at.
    """
    extension = extension.lower()
    # Imported here: pipelines.dicom imports this module for ImageDecodeError and check_dimensions.
    from pipelines.dicom import decode_dicom

    if extension != ".dcm" and extension not in _PILLOW_FORMATS:
        raise ImageDecodeError("unsupported file type: expected .jpg, .jpeg, .png, .bmp or .dcm")
    # Decoders of malformed input warn freely (pydicom's warnings may quote header values, i.e.
    # patient data). Those are neither the client's business nor the log's, and pytest turns them
    # into errors. catch_warnings is process-wide state on Python 3.11: fine for prefork workers.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if extension == ".dcm":
                return decode_dicom(data, max_pixels)
            return _decode_with_pillow(data, extension, max_pixels)
        except (ImageDecodeError, MemoryError):
            raise
        except Exception as exc:  # a decoder fed hostile bytes can raise anything; keep the cause for the log
            raise ImageDecodeError("image could not be decoded") from exc


def check_dimensions(width: int, height: int, max_pixels: int) -> None:
    """Refuse empty or oversized images from their header, before any pixel buffer exists."""
    if width <= 0 or height <= 0:
        raise ImageDecodeError("image has no pixels")
    if width * height > max_pixels:
        raise ImageDecodeError(f"image too large: {width} x {height} pixels exceeds the {max_pixels}-pixel limit")


def _decode_with_pillow(data: bytes, extension: str, max_pixels: int) -> DecodedImage:
    source_format, pillow_formats, accepted = _PILLOW_FORMATS[extension]
    label = source_format.upper()
    try:
        image = Image.open(io.BytesIO(data), formats=pillow_formats)
    except Image.DecompressionBombError as exc:
        # Pillow's hard stop (2 x MAX_IMAGE_PIXELS) fires inside open(), before our own check can.
        hard_limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else max_pixels
        raise ImageDecodeError(f"image too large: exceeds the {min(max_pixels, hard_limit)}-pixel limit") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(f"file is not a valid {label} image") from exc
    with image:
        if image.format not in accepted:  # belt and braces: open() already tried only these plugins
            raise ImageDecodeError(f"file is not a valid {label} image")
        check_dimensions(image.width, image.height, max_pixels)
        if source_format == "jpeg" and image.mode == "RGB":
            # Ask libjpeg for the Y (luminance) plane alone: same values as RGB → "L", ~30 % faster,
            # and no full-size RGB buffer. The size asked for is the full size, so nothing is scaled.
            image.draft("L", image.size)
        try:
            # Decode everything now: with LOAD_TRUNCATED_IMAGES left False, a short file raises here
            # instead of yielding a grey-padded image that a model would happily measure.
            image.load()
        except (OSError, SyntaxError, EOFError) as exc:
            reason = "image is truncated" if "truncated" in str(exc) else "image data is corrupt"
            raise ImageDecodeError(reason) from exc
        ImageOps.exif_transpose(image, in_place=True)  # phones and scanners rotate via EXIF only
        pixels, bits_stored = _grey_pixels(image)
    pixels.flags.writeable = False
    # spacing stays None: PNG pHYs and JPEG/BMP DPI describe printing or a screen, are often a
    # default 72/96 dpi, and never the detector or the patient plane, so millimetres derived from
    # them would be wrong while looking authoritative. Millimetre values need a DICOM with spacing.
    return DecodedImage(
        pixels=pixels, source_format=source_format, spacing=None, bits_stored=bits_stored, size_bytes=len(data)
    )


def _grey_pixels(image: Image.Image) -> tuple[npt.NDArray[np.uint8] | npt.NDArray[np.uint16], int]:
    """One grey plane: 16-bit grey stays 16-bit, everything else becomes 8-bit luminance."""
    if image.mode in _SIXTEEN_BIT_MODES:
        # astype copies only when the byte order differs ("I;16B"); otherwise it is a no-op.
        return np.asarray(image).astype(np.uint16, copy=False), 16
    if image.mode == "I":  # 32-bit signed; older Pillow opens 16-bit grey PNGs this way
        wide = np.asarray(image)
        if wide.min() < 0 or wide.max() > 0xFFFF:
            raise ImageDecodeError("image has pixel values outside the 16-bit range")
        return wide.astype(np.uint16), 16
    if image.mode != "L":
        # RGB(A), P, LA, 1, CMYK…: ITU-R 601 luminance. Alpha is dropped; a radiograph has none.
        image = image.convert("L")
    return np.asarray(image, dtype=np.uint8), 8
