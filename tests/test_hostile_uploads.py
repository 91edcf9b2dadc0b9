"""Hostile images are refused at submit with 400 / 10003 and leave nothing behind (SPEC §3, §6).

Bombs, truncated files, DICOM without pixel data and content that does not match its extension,
through the real API (no worker) and, faster, through `inspect_image` alone. Uploads under
`FLUSH_BYTES` are checked in memory, larger ones from their staged file: both ways are covered.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pipelines.decode import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_image
from server.core.storage import LocalStorage
from server.errors import UnsupportedImage
from server.imagecheck import (
    MAX_IMAGE_PIXELS,
    TAIL_BYTES,
    _without_trailing_zeros,
    inspect_image,
    inspect_image_bytes,
)
from server.upload import FLUSH_BYTES, UploadedImage
from tests.support.images import (
    bmp_claiming_size,
    dicom_bytes,
    dicom_claiming_size,
    dicom_without_pixel_data,
    image_bytes,
    jpeg_bytes,
    jpeg_claiming_size,
    noisy_image_bytes,
    png16_bytes,
    png_claiming_size,
    png_with_corrupt_data,
    sample_dicom_bytes,
)
from tests.support.stack import Stack

CALLBACK = "http://127.0.0.1:9/callback"

NOISY_JPEG = noisy_image_bytes("JPEG")
NOISY_PNG = noisy_image_bytes("PNG")
NOISY_BMP = noisy_image_bytes("BMP")
# Larger than one flush: the API has written it to its staged file before the check, read from there.
LARGE_JPEG = noisy_image_bytes("JPEG", (1800, 1200))
assert len(LARGE_JPEG) > FLUSH_BYTES

# (filename, content, a substring of the detail)
HOSTILE = [
    pytest.param("bomb.png", png_claiming_size(30000, 30000), "image too large: 30000 x 30000", id="png-bomb"),
    pytest.param("big.png", png_claiming_size(10000, 10000), "image too large: 10000 x 10000", id="png-over-limit"),
    pytest.param("bomb.jpg", jpeg_claiming_size(20000, 20000), "image too large: 20000 x 20000", id="jpeg-bomb"),
    pytest.param("big.jpg", jpeg_claiming_size(8000, 8000), "image too large: 8000 x 8000", id="jpeg-over-limit"),
    pytest.param("bomb.bmp", bmp_claiming_size(20000, 20000), "image too large: 20000 x 20000", id="bmp-bomb"),
    pytest.param("huge.dcm", dicom_claiming_size(10000, 10000), "image too large", id="dicom-over-limit"),
    pytest.param("cut.jpg", NOISY_JPEG[: len(NOISY_JPEG) // 2], "truncated", id="truncated-jpeg"),
    pytest.param("cut-large.jpg", LARGE_JPEG[:-1000], "truncated", id="truncated-jpeg-from-file"),
    # Zero padding ending inside a searched block, and padding that spans two blocks.
    pytest.param("cut-pad.jpg", NOISY_JPEG[:-100] + bytes(1000), "truncated", id="truncated-jpeg-zero-padded"),
    pytest.param(
        "cut-pad2.jpg", NOISY_JPEG[:-100] + bytes(TAIL_BYTES + 100), "truncated", id="truncated-jpeg-padded-2-blocks"
    ),
    # A scan that starts after the last end-of-image marker was cut short.
    pytest.param(
        "rescan.jpg", NOISY_JPEG + b"\xff\xda\x00\x08" + bytes(range(1, 200)), "truncated", id="jpeg-scan-after-eoi"
    ),
    pytest.param("cut.png", NOISY_PNG[: NOISY_PNG.rindex(b"IEND") - 4 - 1000], "truncated", id="truncated-png"),
    pytest.param("cut.bmp", NOISY_BMP[: len(NOISY_BMP) - 1000], "truncated", id="truncated-bmp"),
    pytest.param("cut.dcm", sample_dicom_bytes()[:-1000], "truncated", id="truncated-dicom"),
    pytest.param("empty.dcm", dicom_without_pixel_data(), "DICOM file has no pixel data", id="dicom-no-pixels"),
]
# Refused from the first bytes already (server.imageformat); inspect_image refuses them too.
MISMATCHED = [
    pytest.param("jpeg.png", jpeg_bytes(), "PNG", id="jpeg-as-png"),
    pytest.param("page.jpg", b"<!DOCTYPE html><html><body>x</body></html>", "JPEG", id="html-as-jpeg"),
    pytest.param(
        "logo.jpg", b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', "JPEG", id="svg-as-jpeg"
    ),
    pytest.param("doc.jpg", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n", "JPEG", id="pdf-as-jpeg"),
    pytest.param("headless.dcm", sample_dicom_bytes()[132:], "DICOM", id="dicom-without-dicm"),
]
VALID = [
    # More zero padding after EOI than the tail that is searched: the benchmark sends such files.
    pytest.param("padded.jpg", jpeg_bytes() + b"\0" * (3 * TAIL_BYTES), id="jpeg-zero-padded"),
    pytest.param("padded-a-bit.jpg", NOISY_JPEG + bytes(TAIL_BYTES + 100), id="jpeg-padded-2-blocks"),
    pytest.param("noise.jpeg", NOISY_JPEG, id="jpeg"),
    pytest.param("large.jpg", LARGE_JPEG, id="jpeg-from-file"),
    pytest.param("deep.png", png16_bytes((300, 200)), id="png-16-bit"),
    pytest.param("noise.png", NOISY_PNG, id="png"),
    pytest.param("scan.bmp", NOISY_BMP, id="bmp"),
    pytest.param("grey.bmp", image_bytes("BMP"), id="bmp-small"),
    pytest.param("ct.dcm", sample_dicom_bytes("CT_small.dcm"), id="dicom-ct"),
    pytest.param("mr.dcm", sample_dicom_bytes("MR_small.dcm"), id="dicom-mr"),
    pytest.param("dx.dcm", dicom_bytes((300, 200)), id="dicom-dx"),
]


@pytest.fixture(scope="module")
def client(api_only: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_only.base_url, timeout=30) as http:
        yield http


def analyze(api_only: Stack, client: httpx.Client, filename: str, content: bytes) -> tuple[str, httpx.Response]:
    task_id = str(uuid.uuid4())
    fields = {"taskId": task_id, "taskType": "pano", "callbackUrl": CALLBACK}
    return task_id, api_only.post_analyze(fields, (filename, content), client)


@pytest.mark.parametrize(("filename", "content", "mentions"), HOSTILE + MISMATCHED)
def test_hostile_upload_is_400_10003_and_leaves_nothing(
    api_only: Stack, client: httpx.Client, filename: str, content: bytes, mentions: str
) -> None:
    before = (api_only.task_keys(), api_only.stored_files(), api_only.queued_messages())
    task_id, response = analyze(api_only, client, filename, content)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 10003
    assert mentions in (body["detail"] or ""), body
    assert (api_only.task_keys(), api_only.stored_files(), api_only.queued_messages()) == before
    assert not any(api_only.upload_dir.glob(".*.part"))
    assert api_only.record(task_id) == {}


@pytest.mark.parametrize(("filename", "content"), VALID)
def test_valid_image_is_still_accepted(api_only: Stack, client: httpx.Client, filename: str, content: bytes) -> None:
    queued = api_only.queued_messages()["pano"]
    task_id, response = analyze(api_only, client, filename, content)
    assert response.status_code == 202, response.text
    record = api_only.record(task_id)
    assert record["status"] == "queued"
    assert (api_only.upload_dir / record["imageKey"]).read_bytes() == content
    assert api_only.queued_messages()["pano"] == queued + 1


def inspect(tmp_path: Path, filename: str, content: bytes, in_memory: bool) -> None:
    """The check as the API runs it on an upload still in memory, or on its staged file."""
    path = tmp_path / filename
    if in_memory:
        inspect_image_bytes(content, path.suffix)
        return
    path.write_bytes(content)
    inspect_image(path, path.suffix)


@pytest.mark.parametrize("in_memory", [True, False], ids=["bytes", "file"])
@pytest.mark.parametrize(("filename", "content", "mentions"), HOSTILE + MISMATCHED)
def test_inspect_image_refuses(tmp_path: Path, filename: str, content: bytes, mentions: str, in_memory: bool) -> None:
    with pytest.raises(UnsupportedImage) as refused:
        inspect(tmp_path, filename, content, in_memory)
    assert mentions in (refused.value.detail or "")


@pytest.mark.parametrize("in_memory", [True, False], ids=["bytes", "file"])
@pytest.mark.parametrize(("filename", "content"), VALID)
def test_inspect_image_accepts(tmp_path: Path, filename: str, content: bytes, in_memory: bool) -> None:
    inspect(tmp_path, filename, content, in_memory)


def test_what_needs_decoding_is_left_to_the_worker(tmp_path: Path) -> None:
    content = png_with_corrupt_data()
    path = tmp_path / "garbled.png"
    path.write_bytes(content)
    inspect_image(path, ".png")  # header, size and IEND are all fine
    with pytest.raises(ImageDecodeError, match="corrupt"):
        decode_image(content, ".png")


def test_dicom_details_never_quote_the_header(tmp_path: Path) -> None:
    path = tmp_path / "cut.dcm"
    path.write_bytes(sample_dicom_bytes()[:-1000])
    with pytest.raises(UnsupportedImage) as refused:
        inspect_image(path, ".dcm")
    assert "CompressedSamples" not in (refused.value.detail or "")  # CT_small's patient name


def test_refused_commit_leaves_no_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    image = UploadedImage(storage, storage.new_key(".png"), ".png", "bomb.png")
    image.keep(memoryview(png_claiming_size(30000, 30000)))
    with pytest.raises(UnsupportedImage):
        image.commit()
    assert list(tmp_path.iterdir()) == []  # checked in memory: never written
    image.discard()  # what the submitter does with any failure of commit()
    assert list(tmp_path.iterdir()) == []


def test_refused_commit_of_a_flushed_upload_leaves_no_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    image = UploadedImage(storage, storage.new_key(".jpg"), ".jpg", "cut.jpg")
    assert image.keep(memoryview(LARGE_JPEG[:-1000]))
    image.flush()  # as the reader does past FLUSH_BYTES
    assert [p for p in tmp_path.rglob("*") if p.is_file()] != []  # staged on disk: checked from the file
    with pytest.raises(UnsupportedImage, match="truncated"):
        image.commit()
    image.discard()
    assert list(tmp_path.iterdir()) == []


def test_pixel_limit_matches_the_worker() -> None:
    assert MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS


def test_the_check_does_not_load_numpy_into_the_api() -> None:
    code = "import sys, server.upload; assert 'numpy' not in sys.modules, 'numpy imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 127, 4096, TAIL_BYTES])
def test_trailing_zeros_are_measured_like_rstrip(length: int) -> None:
    for kept in {0, 1, 2, 3, length // 3, length // 2, length - 1, length}:
        if not 0 <= kept <= length:
            continue
        # Non-zero content with one zero byte inside it (which must not end it early), then zeros.
        content = bytearray(b"\x01" * kept)
        if kept > 2:
            content[kept // 2] = 0
        block = bytes(content) + bytes(length - kept)
        assert _without_trailing_zeros(block) == len(block.rstrip(b"\0")) == kept
