"""Request, response and callback models of the public contract."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import idna
import yarl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.core.netpolicy import ip_literal
from server.core.status import TaskStatus

# Version 4, variant RFC 4122, canonical 8-4-4-4-12 spelling only: `uuid.UUID()` would also take
# braces, `urn:uuid:` and hyphen-less forms, letting one task be claimed under several keys.
# Anchored, both cases spelled out, no flags: the same text is the OpenAPI (ECMA-262) `pattern`.
TASK_ID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"
_UUID4 = re.compile(TASK_ID_PATTERN)
MAX_CALLBACK_URL_LENGTH = 2048
_DNS_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}")
TaskType = Literal["pano", "ceph"]


def canonical_task_id(value: str) -> str:
    """The lowercase form of a canonical UUID v4; `ValueError` for anything else."""
    if not _UUID4.fullmatch(value):
        raise ValueError("taskId must be a UUID version 4 in canonical 8-4-4-4-12 hex form")
    return value.lower()


def checked_callback_url(value: str) -> str:
    if len(value) > MAX_CALLBACK_URL_LENGTH:
        raise ValueError(f"callbackUrl must be at most {MAX_CALLBACK_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("callbackUrl must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise ValueError(f"callbackUrl is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("callbackUrl must be an absolute http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("callbackUrl must name a host")
    if port == 0:
        raise ValueError("callbackUrl port must be between 1 and 65535")
    try:
        # The parsing of the network policy check (httpx) and of the callback sender (aiohttp's
        # yarl): a URL accepted here can be checked and sent to. yarl refuses what httpx reads
        # leniently, e.g. a backslash in the authority, which WHATWG parsers take for a '/'.
        host = httpx.URL(value).raw_host.decode("ascii")
        sent_host = yarl.URL(value).raw_host
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise ValueError(f"callbackUrl host is not valid: {exc}") from None
    if not sent_host:
        raise ValueError("callbackUrl must name a host")
    if ip_literal(host) is None and not _is_dns_name(host):
        raise ValueError("callbackUrl host is not a valid DNS name")
    return value


def _is_dns_name(host: str) -> bool:
    labels = host.removesuffix(".").split(".")
    # ASCII (non-ASCII names arrive as A-labels): letters, digits, '-' and the '_' some internal
    # zones use; '%'-escapes and other punctuation name nothing DNS can resolve.
    if len(host) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        return False
    try:
        for label in labels:
            if label.lower().startswith("xn--"):
                idna.decode(label)  # an A-label must be valid punycode, or connecting fails later
    except (idna.IDNAError, UnicodeError):
        return False
    return True


class AnalyzeRequest(BaseModel):
    """The form fields of `POST /api/v1/analyze` (the image travels beside them)."""

    model_config = ConfigDict(frozen=True)

    taskId: str = Field(description="UUID version 4, canonical form; returned lowercase")
    taskType: TaskType
    callbackUrl: str = Field(max_length=MAX_CALLBACK_URL_LENGTH)

    @field_validator("taskId")
    @classmethod
    def validate_task_id(cls, value: str) -> str:
        return canonical_task_id(value)

    @field_validator("taskType", mode="before")
    @classmethod
    def validate_task_type(cls, value: object) -> object:
        if value not in ("pano", "ceph"):
            raise ValueError("taskType must be either pano or ceph")
        return value

    @field_validator("callbackUrl", mode="before")
    @classmethod
    def validate_callback_url(cls, value: object) -> object:
        return checked_callback_url(value) if isinstance(value, str) else value


class AnalyzeResponse(BaseModel):
    taskId: str
    status: Literal["accepted"] = "accepted"
    message: str = "Task queued successfully"


class ErrorDetail(BaseModel):
    """The error carried by a callback or a task record."""

    code: int
    message: str


class ErrorResponse(BaseModel):
    """Every HTTP error body, at the top level."""

    code: int = Field(description="Service error code: 10000-10009 (see the README's error table)")
    message: str = Field(description="What went wrong, in general terms")
    detail: str | None = Field(default=None, description="What exactly was wrong with this request, when known")


# Headers that always come with an error status, for the OpenAPI description.
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "Always `Bearer`",
            "required": True,
            "schema": {"type": "string", "const": "Bearer"},
        }
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait before trying again",
            "required": True,
            "schema": {"type": "integer", "minimum": 0},
        }
    },
}
UNAUTHORIZED = "Missing or unknown API key (10005); only when API keys are configured"
INTERNAL_ERROR = "Internal error (10000); the body says nothing internal, the service log has it"


def error_responses(described: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses` for error statuses: each an `ErrorResponse` body, with its headers."""
    return {
        status: {"model": ErrorResponse, "description": text}
        | ({"headers": _ERROR_HEADERS[status]} if status in _ERROR_HEADERS else {})
        for status, text in described.items()
    }


class ServiceInfo(BaseModel):
    """`GET /`."""

    service: str
    version: str
    status: Literal["running"]


class CallbackPayload(BaseModel):
    """The JSON body POSTed to `callbackUrl` when a task ends."""

    taskId: str
    taskType: TaskType | None = None
    status: TaskStatus | None = None
    data: dict[str, Any] | None = None
    error: ErrorDetail | None = None


class CallbackView(BaseModel):
    """Where the task's callback stands."""

    status: Literal["pending", "delivering", "delivered", "failed"] = "pending"
    attempts: int = 0
    lastAttemptAt: str | None = None
    lastStatusCode: int | None = None
    lastError: str | None = None
    nextAttemptAt: str | None = None


class TaskView(BaseModel):
    """`GET /api/v1/task/{taskId}`: the task's state, and its result once it ended."""

    taskId: str
    taskType: TaskType
    status: TaskStatus
    createdAt: str | None = None
    startedAt: str | None = None
    completedAt: str | None = None
    data: dict[str, Any] | None = None
    error: ErrorDetail | None = None
    callback: CallbackView = CallbackView()

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TaskView:
        callback = record.get("callback") or {}
        return cls(
            taskId=record["taskId"],
            taskType=record["taskType"],
            status=record.get("status", TaskStatus.QUEUED),
            createdAt=record.get("createdAt"),
            startedAt=record.get("startedAt"),
            completedAt=record.get("completedAt"),
            data=record.get("data"),
            error=record.get("error"),
            callback=CallbackView(**{k: v for k, v in callback.items() if k in CallbackView.model_fields}),
        )
