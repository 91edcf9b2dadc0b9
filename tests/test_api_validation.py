"""Bad requests get the documented error body and leave nothing behind (API with no worker)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support import multipart
from tests.support.images import image_bytes, jpeg_bytes, sample_dicom_bytes
from tests.support.stack import Stack

CALLBACK = "http://127.0.0.1:9/callback"


@pytest.fixture(scope="module")
def client(api_only: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_only.base_url, timeout=30) as http:
        yield http


@pytest.fixture
def leaves_nothing(api_only: Stack) -> Iterator[None]:
    """The test's requests must add no task key, no stored file and no queued message."""
    keys, files, queued = api_only.task_keys(), api_only.stored_files(), api_only.queued_messages()
    yield
    assert api_only.task_keys() == keys
    assert api_only.stored_files() == files
    assert api_only.queued_messages() == queued
    assert not any(api_only.upload_dir.glob(".*.part"))


def post(client: httpx.Client, parts: list[multipart.Part]) -> httpx.Response:
    content_type, body = multipart.encode(parts)
    return client.post("/api/v1/analyze", content=body, headers={"Content-Type": content_type})


def assert_error(response: httpx.Response, status: int, code: int, mentions: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "detail"}
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    if mentions:
        assert mentions in (body["detail"] or ""), body


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.mark.parametrize("missing", ["taskId", "taskType", "callbackUrl", "image"])
@pytest.mark.usefixtures("leaves_nothing")
def test_each_missing_field_is_400_10001(client: httpx.Client, missing: str) -> None:
    values: dict[str, str | None] = {"taskId": new_id(), "taskType": "pano", "callbackUrl": CALLBACK}
    image: tuple[str, bytes] | None = ("x.jpg", jpeg_bytes())
    if missing == "image":
        image = None
    else:
        values[missing] = None
    parts = multipart.analyze_parts(values["taskId"], values["taskType"], values["callbackUrl"], image)
    assert_error(post(client, parts), 400, 10001, missing)


@pytest.mark.parametrize(
    ("filename", "content", "mentions"),
    [
        ("empty.jpg", b"", "empty"),
        ("text.jpg", b"this is not an image at all, just text pretending to be one" * 5, "not a JPEG"),
        ("short.jpg", b"hi", "not a JPEG"),
        ("notes.txt", b"plain text", ".txt"),
        ("noextension", jpeg_bytes(), "(none)"),
        ("png-as.jpg", image_bytes("PNG"), "not a JPEG"),
        ("jpeg-as.png", jpeg_bytes(), "not a PNG"),
        ("jpeg-as.dcm", jpeg_bytes(), "not a DICOM"),
        ("scan.gif", image_bytes("GIF"), ".gif"),
    ],
)
@pytest.mark.usefixtures("leaves_nothing")
def test_unsupported_or_mismatched_images_are_400_10003(
    client: httpx.Client, filename: str, content: bytes, mentions: str
) -> None:
    parts = multipart.analyze_parts(new_id(), "pano", CALLBACK, (filename, content))
    assert_error(post(client, parts), 400, 10003, mentions)


@pytest.mark.parametrize(
    "task_id",
    [
        str(uuid.uuid1()),
        "{" + str(uuid.uuid4()) + "}",
        "urn:uuid:" + str(uuid.uuid4()),
        uuid.uuid4().hex,
        "not-a-uuid",
    ],
)
@pytest.mark.usefixtures("leaves_nothing")
def test_bad_task_ids_are_400_10001(client: httpx.Client, task_id: str) -> None:
    parts = multipart.analyze_parts(task_id, "pano", CALLBACK, ("x.jpg", jpeg_bytes()))
    assert_error(post(client, parts), 400, 10001, "taskId")


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/cb", "http:///cb", "https://", "callback", "http://example.com/" + "a" * 2030],
)
@pytest.mark.usefixtures("leaves_nothing")
def test_bad_callback_urls_are_400_10001(client: httpx.Client, url: str) -> None:
    parts = multipart.analyze_parts(new_id(), "ceph", url, ("x.png", image_bytes("PNG")))
    assert_error(post(client, parts), 400, 10001, "callbackUrl")


@pytest.mark.usefixtures("leaves_nothing")
def test_bad_task_type_is_400_10001(client: httpx.Client) -> None:
    parts = multipart.analyze_parts(new_id(), "cbct", CALLBACK, ("x.jpg", jpeg_bytes()))
    assert_error(post(client, parts), 400, 10001, "taskType")


@pytest.mark.usefixtures("leaves_nothing")
def test_fields_after_the_image_are_still_validated(client: httpx.Client) -> None:
    parts = [("image", "x.jpg", jpeg_bytes()), ("taskId", None, b"nope"), ("taskType", None, b"pano")]
    parts.append(("callbackUrl", None, CALLBACK.encode()))
    assert_error(post(client, parts), 400, 10001, "taskId")


@pytest.mark.usefixtures("leaves_nothing")
def test_image_sent_as_text_is_refused(client: httpx.Client) -> None:
    parts = multipart.analyze_parts(new_id(), "pano", CALLBACK, None) + [("image", None, b"\xff\xd8\xff")]
    assert_error(post(client, parts), 400, 10001, "as text")


@pytest.mark.usefixtures("leaves_nothing")
def test_second_image_or_foreign_file_field_is_refused(client: httpx.Client) -> None:
    base = multipart.analyze_parts(new_id(), "pano", CALLBACK, ("a.jpg", jpeg_bytes()))
    assert_error(post(client, [*base, ("image", "b.jpg", jpeg_bytes())]), 400, 10001, "one image")
    base = multipart.analyze_parts(new_id(), "pano", CALLBACK, None)
    assert_error(post(client, [*base, ("attachment", "a.jpg", jpeg_bytes())]), 400, 10001, "attachment")


@pytest.mark.usefixtures("leaves_nothing")
def test_non_multipart_bodies_are_400_10001(client: httpx.Client) -> None:
    assert_error(client.post("/api/v1/analyze", json={"taskId": new_id()}), 400, 10001, "multipart")
    assert_error(client.post("/api/v1/analyze", data={"taskId": new_id()}), 400, 10001, "multipart")
    response = client.post(
        "/api/v1/analyze", content=b"--x\r\ngarbage", headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == 10001


@pytest.mark.usefixtures("leaves_nothing")
def test_too_many_fields_and_oversized_fields_are_refused(client: httpx.Client) -> None:
    many: list[multipart.Part] = [(f"f{n}", None, b"v") for n in range(40)]
    assert_error(post(client, many), 400, 10001, "too many")
    huge = multipart.analyze_parts(new_id(), "pano", "http://example.com/" + "a" * 9000, None)
    assert_error(post(client, huge), 400, 10001, "longer than")


@pytest.mark.usefixtures("leaves_nothing")
def test_truncated_bodies_are_refused(client: httpx.Client) -> None:
    for image in (b"hello", jpeg_bytes()):
        content_type, body = multipart.encode(
            multipart.analyze_parts(new_id(), "pano", CALLBACK, ("x.png" if image == b"hello" else "x.jpg", image))
        )
        cut = body[: body.rindex(b"\r\n--")]  # the image part never ends
        assert_error(
            client.post("/api/v1/analyze", content=cut, headers={"Content-Type": content_type}), 400, 10001, "truncated"
        )


@pytest.mark.usefixtures("leaves_nothing")
def test_repeated_text_fields_count_against_the_limit(client: httpx.Client) -> None:
    parts: list[multipart.Part] = [("taskType", None, b"pano") for _ in range(40)]
    assert_error(post(client, parts), 400, 10001, "too many")


def test_framework_errors_use_the_same_body(client: httpx.Client) -> None:
    assert_error(client.get("/api/v1/nothing-here"), 404, 10000)
    assert_error(client.get("/api/v1/analyze"), 405, 10000)
    assert_error(client.delete("/health"), 405, 10000)


def test_uppercase_task_id_is_accepted_and_is_the_same_task(api_only: Stack, client: httpx.Client) -> None:
    task_id = new_id()
    accepted = post(client, multipart.analyze_parts(task_id.upper(), "pano", CALLBACK, ("x.jpg", jpeg_bytes())))
    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {"taskId": task_id, "status": "accepted", "message": "Task queued successfully"}
    files = api_only.stored_files()
    duplicate = post(client, multipart.analyze_parts(task_id, "pano", CALLBACK, ("x.jpg", jpeg_bytes())))
    assert_error(duplicate, 409, 10002, task_id)
    assert api_only.stored_files() == files  # the refused duplicate's image is gone


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("pano.jpeg", jpeg_bytes()),
        ("pano.PNG", image_bytes("PNG")),
        ("pano.bmp", image_bytes("BMP")),
        ("ceph.dcm", sample_dicom_bytes("CT_small.dcm")),
        ("ceph.dcm", sample_dicom_bytes("MR_small.dcm")),
    ],
)
def test_every_accepted_format_is_queued_with_its_image(
    api_only: Stack, client: httpx.Client, filename: str, content: bytes
) -> None:
    task_id = new_id()
    before = api_only.queued_messages()
    response = post(client, multipart.analyze_parts(task_id, "ceph", CALLBACK, (filename, content)))
    assert response.status_code == 202, response.text
    with api_only.redis() as redis_client:
        record = {k: v.strip('"') for k, v in redis_client.hgetall(f"xray-test:task:{task_id}").items()}
    assert record["status"] == "queued"
    stored = api_only.upload_dir / record["imageKey"]
    assert stored.read_bytes() == content
    assert stored.suffix == filename[filename.rindex(".") :].lower()
    assert api_only.queued_messages() == {"pano": before["pano"], "ceph": before["ceph"] + 1}


def test_openapi_documents_the_analyze_form(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/api/v1/analyze"]["post"]
    schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(schema["required"]) == {"taskId", "taskType", "callbackUrl", "image"}
    assert {"202", "400", "409", "413", "503"} <= set(operation["responses"])
