"""Real image files made for the tests."""

from __future__ import annotations

import io

from PIL import Image
from pydicom.data import get_testdata_file


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 48)) -> bytes:
    picture = Image.new("L", size)
    picture.putdata([(x * 7 + y * 3) % 256 for y in range(size[1]) for x in range(size[0])])
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt)
    return buffer.getvalue()


def jpeg_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    return image_bytes("JPEG", size)


def sample_dicom_bytes(name: str = "CT_small.dcm") -> bytes:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom sample {name} missing"
    with open(path, "rb") as handle:
        return handle.read()


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
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
