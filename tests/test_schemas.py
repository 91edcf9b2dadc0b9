from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from server.schemas import AnalyzeRequest, AnalyzeResponse, CallbackPayload, ErrorDetail, ErrorResponse

VALID_ID = "550e8400-e29b-41d4-a716-446655440000"
CALLBACK = "http://example.com/callback"


def test_seed_step_2_valid_request_is_accepted() -> None:
    request = AnalyzeRequest(taskId=VALID_ID, taskType="pano", callbackUrl=CALLBACK)
    assert request.taskId == VALID_ID
    assert AnalyzeResponse(taskId=request.taskId).model_dump() == {
        "taskId": VALID_ID,
        "status": "accepted",
        "message": "Task queued successfully",
    }


def test_seed_step_2_invalid_task_id_is_refused() -> None:
    with pytest.raises(ValidationError, match="UUID version 4"):
        AnalyzeRequest(taskId="invalid", taskType="pano", callbackUrl="http://test.com")


@pytest.mark.parametrize(
    "task_id",
    [
        str(uuid.uuid1()),  # version 1
        "550e8400-e29b-31d4-a716-446655440000",  # version 3
        "550e8400-e29b-41d4-c716-446655440000",  # variant bits not RFC 4122
        "{550e8400-e29b-41d4-a716-446655440000}",
        "urn:uuid:550e8400-e29b-41d4-a716-446655440000",
        "550e8400e29b41d4a716446655440000",
        " 550e8400-e29b-41d4-a716-446655440000",
        "550e8400-e29b-41d4-a716-44665544000g",
        "",
    ],
)
def test_only_canonical_uuid4_task_ids_pass(task_id: str) -> None:
    with pytest.raises(ValidationError):
        AnalyzeRequest(taskId=task_id, taskType="pano", callbackUrl=CALLBACK)


def test_uppercase_task_id_is_the_same_task_in_lowercase() -> None:
    request = AnalyzeRequest(taskId=VALID_ID.upper(), taskType="ceph", callbackUrl=CALLBACK)
    assert request.taskId == VALID_ID


@pytest.mark.parametrize("task_type", ["PANO", "xray", "", "pano "])
def test_task_type_is_pano_or_ceph(task_type: str) -> None:
    with pytest.raises(ValidationError, match="pano or ceph"):
        AnalyzeRequest.model_validate({"taskId": VALID_ID, "taskType": task_type, "callbackUrl": CALLBACK})


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/callback",
        "http:///callback",
        "http://",
        "https://:8080/x",
        "example.com/callback",
        "/callback",
        "javascript:alert(1)",
        "http://example.com/a b",
        "http://example.com:99999/x",
        "http://example.com:0/x",
        "http://a..b/cb",
        "http://" + "a" * 64 + ".example.com/cb",
        "http://xn--a/cb",
        "http://" + "a." * 130 + "com/cb",
        "http://example.com/" + "a" * (2049 - len("http://example.com/")),
    ],
)
def test_callback_url_must_be_absolute_http_with_a_host(url: str) -> None:
    with pytest.raises(ValidationError):
        AnalyzeRequest(taskId=VALID_ID, taskType="pano", callbackUrl=url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5000/callback",
        "https://hooks.example.org/x?token=abc",
        "http://[::1]:8080/cb",
        "http://bücher.example/cb",
        "http://internal_host.lan:8080/cb",
        "http://example.com/" + "a" * (2048 - len("http://example.com/")),
    ],
)
def test_valid_callback_urls_pass(url: str) -> None:
    assert AnalyzeRequest(taskId=VALID_ID, taskType="pano", callbackUrl=url).callbackUrl == url


def test_error_and_callback_models_keep_the_seed_shape() -> None:
    assert ErrorResponse(code=10001, message="m", detail=None).model_dump() == {
        "code": 10001,
        "message": "m",
        "detail": None,
    }
    payload = CallbackPayload(taskId=VALID_ID, data=None, error=ErrorDetail(code=12002, message="Image file not found"))
    dumped = payload.model_dump()
    assert dumped["taskId"] == VALID_ID
    assert dumped["error"] == {"code": 12002, "message": "Image file not found"}
