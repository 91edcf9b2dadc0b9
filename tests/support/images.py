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
