"""Real image files made for the tests."""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 48)) -> bytes:
    picture = Image.new("L", size)
    picture.putdata([(x * 7 + y * 3) % 256 for y in range(size[1]) for x in range(size[0])])
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt)
    return buffer.getvalue()


def jpeg_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    return image_bytes("JPEG", size)


def sample_dicom_bytes(name: str = "CT_small.dcm") -> bytes:
    path = get_testdata_file(name, download=False)  # bundled files only: nothing is fetched
    assert isinstance(path, str), f"pydicom sample {name} is not bundled"
    with open(path, "rb") as handle:
        return handle.read()


def sample_dataset(name: str = "CT_small.dcm") -> Dataset:
    """A bundled pydicom sample, parsed, to be altered and saved with `dicom_file_bytes`."""
    return dcmread(io.BytesIO(sample_dicom_bytes(name)))


def dicom_file_bytes(dataset: Dataset) -> bytes:
    """`dataset` saved as a proper Part 10 file (preamble, DICM, file meta)."""
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def gradient(size: tuple[int, int], maximum: int = 255) -> list[int]:
    width, height = size
    return [(x * 7 + y * 3) % (maximum + 1) for y in range(height) for x in range(width)]


def png16_bytes(size: tuple[int, int]) -> bytes:
    picture = Image.new("I;16", size)
    picture.putdata(gradient(size, 65535))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def dicom_bytes(
    size: tuple[int, int], spacing_mm: tuple[float, float] | None = (0.1, 0.1), calibration: str | None = "FIDUCIAL"
) -> bytes:
    """A 12-bit MONOCHROME2 DX image (explicit VR little endian) with the given PixelSpacing."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

    width, height = size
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset("generated.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "DX"
    dataset.Rows, dataset.Columns = height, width
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 12, 11
    dataset.PixelRepresentation = 0
    if spacing_mm is not None:
        dataset.PixelSpacing = list(spacing_mm)
        if calibration:
            dataset.PixelSpacingCalibrationType = calibration
    dataset.PixelData = bytes(b for value in gradient(size, 4095) for b in value.to_bytes(2, "little"))
    return dicom_file_bytes(dataset)


def noisy_image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (600, 400)) -> bytes:
    """Pseudo-random grey pixels: compresses badly, so most of the file is entropy-coded data."""
    picture = Image.frombytes("L", size, random.Random(1234).randbytes(size[0] * size[1]))  # noqa: S311 - test data
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt)
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A small real PNG whose IHDR claims `width` x `height` (CRC recomputed, so it parses)."""
    data = bytearray(image_bytes("PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def jpeg_claiming_size(width: int, height: int) -> bytes:
    """A small real baseline JPEG whose SOF0 header claims `width` x `height`."""
    data = bytearray(jpeg_bytes())
    sof = data.index(b"\xff\xc0")  # FF C0, length (2), precision (1), height (2), width (2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def dicom_without_pixel_data(name: str = "CT_small.dcm") -> bytes:
    """A pydicom sample with its PixelData element removed, saved as a proper Part 10 file."""
    dataset = sample_dataset(name)
    del dataset.PixelData
    return dicom_file_bytes(dataset)


def bmp_claiming_size(width: int, height: int) -> bytes:
    """A small real BMP (BITMAPINFOHEADER) whose header claims `width` x `height`."""
    data = bytearray(image_bytes("BMP"))
    assert struct.unpack_from("<I", data, 14) == (40,)
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def dicom_claiming_size(width: int, height: int, name: str = "CT_small.dcm") -> bytes:
    """A pydicom sample whose Rows and Columns claim `width` x `height` (the pixel data is unchanged)."""
    dataset = sample_dataset(name)
    dataset.Rows, dataset.Columns = height, width
    return dicom_file_bytes(dataset)


def png_with_corrupt_data(size: tuple[int, int] = (300, 200)) -> bytes:
    """A PNG whose header, chunk CRCs and IEND are intact but whose compressed pixel data is garbage.

    Passes every check made at submit; only decoding (the worker, 12003) finds it.
    """
    data = bytearray(noisy_image_bytes("PNG", size))
    at = data.index(b"IDAT")
    (length,) = struct.unpack_from(">I", data, at - 4)
    start, end = at + 4 + 2, at + 4 + length  # keep the 2-byte zlib header, invert the deflate stream
    data[start:end] = bytes(255 - value for value in data[start:end])
    struct.pack_into(">I", data, end, zlib.crc32(bytes(data[at:end])))
    return bytes(data)
