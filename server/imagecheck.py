"""Header-level checks of a fully received upload, before its task exists (SPEC §3: 400 / 10003).

`server.imageformat` judged the first bytes while the body streamed in. Here the whole upload has
arrived (still in memory when small, else staged on disk, not yet visible under its key), and three
things are checked:

- the format's header parses (Pillow or pydicom, restricted to the one format the extension names);
- the dimensions are within the worker's pixel limit, so a decompression bomb never reaches a queue;
- the file does not stop before its image data does (JPEG EOI, PNG IEND, BMP rows, DICOM pixel data).

This runs on every request, so it stays header-only: no pixel is decoded and, besides the header,
only the file's last `TAIL_BYTES` are read (plus any zero padding stepped over), whatever the image
size. An upload still in memory is checked there (`inspect_image_bytes`): reading it back from the
file cost the API about 0.2 ms of CPU per request under concurrent uploads, in system calls that each
hand the GIL over. Whatever needs the pixels decoded (corrupt entropy-coded data, a DICOM codestream that does
not decode, an unsupported photometric interpretation) is still the worker's to find: 12003.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Final

from PIL import Image, ImageFile, UnidentifiedImageError
from PIL.BmpImagePlugin import BmpImageFile
from PIL.JpegImagePlugin import JpegImageFile
from PIL.PngImagePlugin import PngImageFile

from server.errors import UnsupportedImage
from server.imageformat import DICOM, FORMATS_BY_EXTENSION

# Must equal pipelines.decode.DEFAULT_MAX_PIXELS (a test asserts it). Not imported from there: that
# module imports numpy, which the API process has no other use for.
MAX_IMAGE_PIXELS: Final = 50_000_000
# How much of the file's end is searched for the end-of-image marker.
TAIL_BYTES: Final = 64 * 1024
_ZEROS: Final = bytes(TAIL_BYTES)
# Zero padding after the end marker is stepped over up to this much; a file padded further is not
# checked for truncation here (the worker's full decode still is), so a request never pays for
# reading megabytes of padding.
MAX_PADDING_BYTES: Final = TAIL_BYTES
# pydicom skips over values longer than this, so native (uncompressed) pixel data is located, not
# loaded. Encapsulated (compressed) pixel data has no length to skip by: pydicom reads it through to
# its delimiter, at most the upload limit, still without decoding it.
DICOM_DEFER_BYTES: Final = 1024

_PILLOW_PLUGINS: Final[dict[str, type[ImageFile.ImageFile]]] = {
    "JPEG": JpegImageFile,
    "PNG": PngImageFile,
    "BMP": BmpImageFile,
}
_JPEG_SOS: Final = b"\xff\xda"
_JPEG_EOI: Final = b"\xff\xd9"
_PNG_IEND: Final = b"IEND\xaeB`\x82"  # chunk type and its (constant) CRC
_BMP_UNCOMPRESSED: Final = frozenset({0, 3, 6})  # BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS
_DICOM_PIXEL_KEYWORDS: Final = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_UNDEFINED_LENGTH: Final = 0xFFFFFFFF

# The libraries warn freely on malformed input, and pydicom's warnings can quote header values
# (patient data): they are silenced. warnings.catch_warnings swaps process-wide state on Python
# 3.11, and uploads are inspected in several threads at once; two overlapping blocks could restore
# each other's filters and leave warnings off for the whole process. The lock keeps ours apart.
_WARNINGS_LOCK: Final = threading.Lock()


def inspect_image(path: Path, extension: str) -> None:
    """Raise `UnsupportedImage` (client-safe detail) unless `path` plausibly holds a whole image.

    `extension` is the lowercase, dotted extension already accepted by `imageformat.extension_of`.
    An `OSError` reading the file itself propagates: that is the storage's fault, not the client's.
    """
    with open(path, "rb") as fp:
        _inspect(fp, extension)


def inspect_image_bytes(data: bytes, extension: str) -> None:
    """`inspect_image` for an upload held in memory."""
    _inspect(io.BytesIO(data), extension)


def _inspect(fp: BinaryIO, extension: str) -> None:
    image_format = FORMATS_BY_EXTENSION[extension]
    with _quiet():
        if image_format is DICOM:
            _inspect_dicom(fp)
        else:
            _inspect_pillow(fp, image_format.name)


@contextmanager
def _quiet() -> Iterator[None]:
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _check_dimensions(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise UnsupportedImage("image has no pixels")
    if width * height > MAX_IMAGE_PIXELS:
        raise UnsupportedImage(f"image too large: {width} x {height} pixels exceeds the {MAX_IMAGE_PIXELS}-pixel limit")


def _inspect_pillow(fp: BinaryIO, name: str) -> None:
    try:
        # One plugin only: the magic check again, and less parser exposed to the bytes. open()
        # reads the header; the pixels would only be decoded by load(), which is never called.
        with Image.open(fp, formats=[name]) as image:
            width, height = image.size
    except MemoryError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        width, height = _bomb_size(fp, name)  # always over our limit: _check_dimensions refuses it
    except UnidentifiedImageError:  # its message names the file: not for the client
        raise UnsupportedImage(f"file is not a valid {name} image") from None
    except Exception as exc:  # a parser fed hostile bytes can raise anything
        raise UnsupportedImage("image could not be read") from exc
    _check_dimensions(width, height)
    if name == "BMP":
        _check_bmp_length(fp, width, height)
        return
    tail = _tail(fp)
    if tail is None:
        return  # padded beyond what is worth reading on the request path; the worker still decodes it
    if name == "JPEG":
        # Entropy-coded data never holds FF D9 or FF DA (every FF there is stuffed or a restart
        # marker), so the last EOI must follow the last scan's start. Both can be beyond the tail
        # in a progressive file; an EOI alone is then enough.
        # Only the bytes after the last EOI are searched for a scan start: searching the whole
        # tail cost ~40 µs per request, as no SOS is usually there at all.
        end = tail.rfind(_JPEG_EOI)
        if end < 0 or tail.find(_JPEG_SOS, end + len(_JPEG_EOI)) >= 0:
            raise UnsupportedImage("image is truncated: the JPEG has no end-of-image marker after its data")
    elif _PNG_IEND not in tail:
        raise UnsupportedImage("image is truncated: the PNG has no IEND chunk")


def _bomb_size(fp: BinaryIO, name: str) -> tuple[int, int]:
    """The size of an image Pillow refused as a decompression bomb without saying which size.

    open() refuses sizes past twice Pillow's own limit once the plugin has read the header; the
    plugin constructed directly reads that same header without the check, and still no pixels.
    """
    try:
        fp.seek(0)
        with _PILLOW_PLUGINS[name](fp) as image:
            return image.size
    except MemoryError:
        raise
    except Exception:
        raise UnsupportedImage(f"image too large: exceeds the {MAX_IMAGE_PIXELS}-pixel limit") from None


def _tail(fp: BinaryIO) -> bytes | None:
    """The last `TAIL_BYTES` of the file before any trailing zero bytes; None past `MAX_PADDING_BYTES` of them.

    Some writers (and the benchmark) pad a file with zeros after its end marker; the padding is
    stepped over in blocks, so its cost is a read of it — bounded here.
    """
    end = fp.seek(0, os.SEEK_END)
    file_end = end
    while end > 0:
        if file_end - end > MAX_PADDING_BYTES:
            return None
        start = max(0, end - TAIL_BYTES)
        fp.seek(start)
        block = fp.read(end - start)
        content_length = _without_trailing_zeros(block)
        if content_length == len(block) or start == 0:
            return block[:content_length]  # the usual case: no padding, one read
        if content_length:
            end = start + content_length
            break
        end = start
    start = max(0, end - TAIL_BYTES)
    fp.seek(start)
    return fp.read(end - start)


def _without_trailing_zeros(block: bytes) -> int:
    """The length of `block` less its trailing zero bytes.

    Found by bisection, each step one comparison with zeros (a memcmp): rstrip() alone costs some
    3 ns a byte, 100 µs for the benchmark's 33 KB of padding.
    """
    if not block or block[-1]:
        return len(block)  # the usual case: no padding at all
    low, high = 0, len(block)  # block[high:] is all zeros; its last non-zero byte is not before low
    while high - low > 64:
        middle = (low + high) // 2
        # Slices, not a memoryview: bytes compare with memcmp, a memoryview byte by byte.
        if block[middle:high] == _ZEROS[: high - middle]:
            high = middle
        else:
            low = middle
    return low + len(block[low:high].rstrip(b"\0"))


def _check_bmp_length(fp: BinaryIO, width: int, height: int) -> None:
    """An uncompressed BMP needs `height` padded rows after its pixel-data offset (RLE is not checked)."""
    fp.seek(0)
    header = fp.read(34).ljust(34, b"\0")  # file header (14) and the DIB header fields used below
    offset, dib_size = struct.unpack_from("<II", header, 10)
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes, never compressed
        (bits,) = struct.unpack_from("<H", header, 24)
        compression = 0
    else:
        bits, compression = struct.unpack_from("<HI", header, 28)
    if compression not in _BMP_UNCOMPRESSED or offset == 0:  # Pillow tolerates offset 0: rows follow the palette
        return
    row_bytes = (width * bits + 31) // 32 * 4
    if fp.seek(0, os.SEEK_END) < offset + row_bytes * height:
        raise UnsupportedImage("image is truncated: the BMP holds fewer rows than it declares")


def _inspect_dicom(fp: BinaryIO) -> None:
    # Imported here: pydicom imports numpy, which an API that never sees a DICOM need not load.
    import pydicom
    from pydicom.dataelem import RawDataElement
    from pydicom.errors import InvalidDicomError

    try:
        # No force=True: without the DICM marker, any bytes "parse" as some dataset.
        dataset = pydicom.dcmread(fp, defer_size=DICOM_DEFER_BYTES)
    except MemoryError:
        raise
    except InvalidDicomError:
        raise UnsupportedImage("file is not a valid DICOM file") from None
    except Exception as exc:
        raise UnsupportedImage("DICOM file is malformed") from exc
    # Nothing read from the header goes into a detail: DICOM headers carry patient data.
    keyword = next((name for name in _DICOM_PIXEL_KEYWORDS if name in dataset), None)
    if keyword is None:
        # Also what a file cut inside encapsulated (compressed) pixel data looks like to pydicom.
        raise UnsupportedImage("DICOM file has no pixel data")
    try:
        rows, columns = int(dataset.get("Rows") or 0), int(dataset.get("Columns") or 0)
        # keep_deferred: the element's position and length, without reading its value.
        element = dataset.get_item(keyword, keep_deferred=True)
    except MemoryError:
        raise
    except Exception as exc:
        raise UnsupportedImage("DICOM file is malformed") from exc
    _check_dimensions(columns, rows)
    # A native value was skipped over by its length, so a file cut short inside it parsed without
    # complaint. (Encapsulated data cut short loses its element altogether: "no pixel data" above.)
    if (
        isinstance(element, RawDataElement)
        and element.length != _UNDEFINED_LENGTH
        and element.value_tell + element.length > fp.seek(0, os.SEEK_END)
    ):
        raise UnsupportedImage("image is truncated: the DICOM pixel data is cut short")
