"""`GET /openapi.json` tells the truth: every route, every status it answers, the error body, auth, the form."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis

from server.embedded_redis import EmbeddedRedis
from server.schemas import MAX_CALLBACK_URL_LENGTH, TASK_ID_PATTERN
from tests.conftest import running_api
from tests.support import multipart
from tests.support.images import jpeg_bytes
from tests.support.stack import Stack

KEY = "openapi-key-0123456789abcdef"
LIMIT_MB = 0.05
CALLBACK = "http://127.0.0.1:9/callback"
ERROR_REF = "#/components/schemas/ErrorResponse"
SCHEME = "bearerAuth"

# Every operation, every status it can answer and the body it then has: the document must say
# exactly this. E: the ErrorResponse; J: another JSON model; EJ: either; T: Prometheus text.
E, J, EJ, T = "error", "json", "error or json", "text"
ANSWERS: dict[tuple[str, str], dict[int, str]] = {
    ("post", "/api/v1/analyze"): {202: J, 400: E, 401: E, 409: E, 413: E, 500: E, 503: E},
    ("get", "/api/v1/task/{taskId}"): {200: J, 401: E, 404: E, 500: E, 503: E},
    ("post", "/api/v1/task/{taskId}/cancel"): {200: J, 401: E, 404: E, 409: E, 500: E, 503: E},
    ("post", "/api/v1/task/{taskId}/callback/retry"): {202: J, 400: E, 401: E, 404: E, 500: E, 503: E},
    ("post", "/api/v1/batch"): {202: J, 400: EJ, 401: E, 413: E, 500: E, 503: E},
    ("get", "/"): {200: J},
    ("get", "/health"): {200: J, 503: J},
    ("get", "/api/v1/health"): {200: J, 503: J},
    ("get", "/livez"): {200: J},
    ("get", "/readyz"): {200: J, 503: J},
    ("get", "/metrics"): {200: T},
}
OPEN = {("get", path) for path in ("/", "/health", "/api/v1/health", "/livez", "/readyz", "/metrics")}
# Operations whose description is known not to match the service yet, and why.
NOT_YET: dict[tuple[str, str], str] = {}
OPERATIONS = [
    pytest.param(
        method,
        path,
        id=f"{method.upper()} {path}",
        marks=[pytest.mark.xfail(reason=NOT_YET[(method, path)], strict=True)] if (method, path) in NOT_YET else [],
    )
    for method, path in sorted(ANSWERS)
]
BODIES = {("post", "/api/v1/analyze"), ("post", "/api/v1/batch")}  # multipart uploads
# Headers every answer with that status carries.
ERROR_HEADERS = {401: "WWW-Authenticate", 503: "Retry-After"}


@pytest.fixture(scope="module")
def api(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API with keys and a small upload limit, and no worker: accepted tasks stay queued."""
    with running_api(
        redis_server,
        tmp_path_factory,
        XRAY__SECURITY__API_KEYS=json.dumps({"clinic": KEY}),
        XRAY__LIMITS__MAX_UPLOAD_MB=str(LIMIT_MB),
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def document(api: Stack) -> dict[str, Any]:
    response = httpx.get(f"{api.base_url}/openapi.json", timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = document["paths"][path][method]
    return found


def test_every_route_is_documented_and_nothing_else(document: dict[str, Any]) -> None:
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == set(ANSWERS), "a route was added or removed: describe its answers in ANSWERS"


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_each_operation_documents_exactly_what_it_answers(document: dict[str, Any], method: str, path: str) -> None:
    expected = ANSWERS[(method, path)]
    found = operation(document, method, path)
    responses = found["responses"]
    assert {int(status) for status in responses} == set(expected)
    for status, response in responses.items():
        content = response["content"]
        kind = expected[int(status)]
        if kind == T:
            assert all(media.startswith("text/plain") for media in content), (method, path, status)
            continue
        schema = content["application/json"]["schema"]
        if kind == E:
            assert schema == {"$ref": ERROR_REF}, (method, path, status)
        elif kind == EJ:
            refs = [choice["$ref"] for choice in schema["anyOf"]]
            assert ERROR_REF in refs and len(refs) == 2, (method, path, status)
        else:
            assert schema.get("$ref", "").startswith("#/components/schemas/"), (method, path, status)
            assert schema != {"$ref": ERROR_REF}, (method, path, status)
        header = ERROR_HEADERS.get(int(status)) if kind == E else None
        if header:
            assert response["headers"][header]["required"] is True, (method, path, status)
    if (method, path) in BODIES:
        assert found["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"], (method, path)


@pytest.mark.parametrize(("method", "path"), sorted(ANSWERS))
def test_the_api_routes_declare_bearer_auth(document: dict[str, Any], method: str, path: str) -> None:
    security = operation(document, method, path).get("security")
    assert security == (None if (method, path) in OPEN else [{SCHEME: []}])


def test_the_bearer_scheme_is_declared(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"][SCHEME]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "security" not in document  # no global requirement: health and root stay open


def test_the_error_model(document: dict[str, Any]) -> None:
    schema = document["components"]["schemas"]["ErrorResponse"]
    assert set(schema["properties"]) == {"code", "message", "detail"}
    assert set(schema["required"]) == {"code", "message"}
    assert schema["properties"]["code"]["type"] == "integer"
    assert schema["properties"]["message"]["type"] == "string"


def test_no_framework_422_is_left(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    assert '"422"' not in text
    assert "HTTPValidationError" not in text


def test_the_analyze_form_describes_all_four_fields(document: dict[str, Any]) -> None:
    body = operation(document, "post", "/api/v1/analyze")["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {"multipart/form-data"}
    schema = body["content"]["multipart/form-data"]["schema"]
    assert schema["type"] == "object"
    assert set(schema["required"]) == set(schema["properties"]) == {"taskId", "taskType", "callbackUrl", "image"}
    fields = schema["properties"]
    assert fields["taskId"] | {"description": "", "examples": []} == {
        "type": "string",
        "format": "uuid",
        "pattern": TASK_ID_PATTERN,
        "description": "",
        "examples": [],
    }
    assert fields["taskType"]["type"] == "string"
    assert fields["taskType"]["enum"] == ["pano", "ceph"]
    assert fields["callbackUrl"]["type"] == "string"
    assert fields["callbackUrl"]["format"] == "uri"
    assert fields["callbackUrl"]["maxLength"] == MAX_CALLBACK_URL_LENGTH == 2048
    assert (fields["image"]["type"], fields["image"]["format"]) == ("string", "binary")


def test_the_task_id_pattern_means_what_the_validator_means() -> None:
    # The same text is an ECMA-262 pattern: anchored, no flags, both cases spelled out.
    task_id = str(uuid.uuid4())
    for accepted in (task_id, task_id.upper()):
        assert re.search(TASK_ID_PATTERN, accepted)
    for refused in (
        f"{{{task_id}}}",
        f"urn:uuid:{task_id}",
        task_id.replace("-", ""),
        str(uuid.uuid1()),
        f" {task_id}",
    ):
        assert not re.search(TASK_ID_PATTERN, refused), refused


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(document).validate()  # against the OpenAPI 3.1 meta-schema


def test_what_the_routes_really_answer_is_documented(api: Stack, document: dict[str, Any]) -> None:
    """Provoke what the upload and task routes answer, short of 500 and 503 (see test_outages); check it."""
    answered: list[tuple[str, str, httpx.Response]] = []
    authorized = httpx.Client(base_url=api.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    anonymous = httpx.Client(base_url=api.base_url, timeout=30)

    def analyze(http: httpx.Client, task_id: str, image: bytes = b"") -> httpx.Response:
        parts = multipart.analyze_parts(task_id, "pano", CALLBACK, ("x.jpg", image or jpeg_bytes()))
        content_type, body = multipart.encode(parts)
        response = http.post("/api/v1/analyze", content=body, headers={"Content-Type": content_type})
        answered.append(("post", "/api/v1/analyze", response))
        return response

    def batch(http: httpx.Client, tasks: str, image: bytes = b"") -> httpx.Response:
        files = [("image", ("x.jpg", image or jpeg_bytes(), "image/jpeg"))]
        response = http.post("/api/v1/batch", data={"tasks": tasks}, files=files)
        answered.append(("post", "/api/v1/batch", response))
        return response

    def task_route(http: httpx.Client, method: str, task_id: str, suffix: str = "") -> httpx.Response:
        response = http.request(method, f"/api/v1/task/{task_id}{suffix}")
        answered.append((method.lower(), "/api/v1/task/{taskId}" + suffix, response))
        return response

    with authorized, anonymous:
        queued, canceled = str(uuid.uuid4()), str(uuid.uuid4())
        assert analyze(anonymous, queued).status_code == 401
        assert analyze(authorized, queued).status_code == 202
        assert analyze(authorized, queued).status_code == 409
        assert analyze(authorized, "not-a-uuid").status_code == 400
        assert analyze(authorized, str(uuid.uuid4()), b"\xff\xd8\xff" + bytes(300 * 1024)).status_code == 413
        assert analyze(authorized, canceled).status_code == 202
        for suffix in ("", "/cancel", "/callback/retry"):
            method = "GET" if suffix == "" else "POST"
            assert task_route(anonymous, method, queued, suffix).status_code == 401
            assert task_route(authorized, method, str(uuid.uuid4()), suffix).status_code == 404
        assert task_route(authorized, "GET", queued).status_code == 200
        assert task_route(authorized, "POST", queued, "/callback/retry").status_code == 400  # not ended
        assert task_route(authorized, "POST", canceled, "/cancel").status_code == 200
        assert task_route(authorized, "POST", canceled, "/cancel").status_code == 409
        assert task_route(authorized, "POST", canceled, "/callback/retry").status_code == 202
        one = json.dumps([{"taskId": str(uuid.uuid4()), "taskType": "pano", "callbackUrl": CALLBACK, "image": "x.jpg"}])
        assert batch(anonymous, one).status_code == 401
        assert batch(authorized, one).status_code == 202
        assert batch(authorized, one).status_code == 400  # its only item's taskId is taken now
        assert batch(authorized, "not json").status_code == 400
        assert batch(authorized, one, b"\xff\xd8\xff" + bytes(300 * 1024)).status_code == 413
        for _, path in sorted(OPEN):
            answered.append(("get", path, anonymous.get(path)))  # health: 503, this stack has no worker

    seen: dict[tuple[str, str], set[int]] = {}
    for method, path, response in answered:
        status = response.status_code
        seen.setdefault((method, path), set()).add(status)
        kind = ANSWERS[(method, path)].get(status)
        assert kind is not None, (method, path, status, response.text)
        if kind == E:
            assert set(response.json()) == {"code", "message", "detail"}, response.text
            header = ERROR_HEADERS.get(status)
            if header:
                assert response.headers[header], (method, path, status)
        elif kind == J:
            assert isinstance(response.json(), dict), response.text
        elif kind == EJ:
            assert set(response.json()) in ({"code", "message", "detail"}, {"accepted", "rejected", "items"})
    provoked = {
        key: set(statuses) - {500, 503} for key, statuses in ANSWERS.items() if key not in OPEN | NOT_YET.keys()
    }
    assert {key: statuses for key, statuses in seen.items() if key in provoked} == provoked
