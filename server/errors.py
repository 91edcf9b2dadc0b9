"""Error codes and the one exception hierarchy the API maps to its error body.

    ServiceError                      {code, message, detail} with an HTTP status
    ├── RequestInvalid                400 / 10001
    ├── Unauthorized                  401 / 10005 (with WWW-Authenticate: Bearer)
    ├── TaskAlreadyExists             409 / 10002
    ├── UnsupportedImage              400 / 10003
    ├── UploadTooLarge                413 / 10004
    ├── TaskNotFound                  404 / 10006
    ├── CallbackNotAllowed            400 / 10008
    ├── TaskAlreadyFinished           409 / 10009
    └── DependencyUnavailable         503 / 10007 (with Retry-After)
        └── StorageUnavailable        the image store could not be written

Codes 12xxx never reach an HTTP response: they travel in callbacks and task records.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    HTTP_ERROR = 10000  # no such route, method not allowed, internal error
    VALIDATION_FAILED = 10001
    TASK_EXISTS = 10002
    UNSUPPORTED_IMAGE = 10003
    UPLOAD_TOO_LARGE = 10004
    UNAUTHORIZED = 10005
    TASK_NOT_FOUND = 10006
    DEPENDENCY_UNAVAILABLE = 10007
    CALLBACK_NOT_ALLOWED = 10008
    TASK_FINISHED = 10009
    INFERENCE_FAILED = 12001
    IMAGE_NOT_FOUND = 12002
    IMAGE_UNDECODABLE = 12003
    TASK_TIMED_OUT = 12004
    TASK_CANCELED = 12005


class ServiceError(Exception):
    status_code = 500
    code = ErrorCode.HTTP_ERROR
    message = "Internal server error"

    def __init__(self, detail: str | None = None, *, message: str | None = None) -> None:
        super().__init__(detail or message or self.message)
        self.detail = detail
        if message is not None:
            self.message = message

    @property
    def headers(self) -> dict[str, str]:
        return {}


class RequestInvalid(ServiceError):
    status_code = 400
    code = ErrorCode.VALIDATION_FAILED
    message = "Request validation failed"


class Unauthorized(ServiceError):
    status_code = 401
    code = ErrorCode.UNAUTHORIZED
    message = "Missing or unknown API key"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class TaskAlreadyExists(ServiceError):
    status_code = 409
    code = ErrorCode.TASK_EXISTS
    message = "Task ID already exists"


class UnsupportedImage(ServiceError):
    status_code = 400
    code = ErrorCode.UNSUPPORTED_IMAGE
    message = "Unsupported image format"


class UploadTooLarge(ServiceError):
    status_code = 413
    code = ErrorCode.UPLOAD_TOO_LARGE
    message = "Upload too large"


class CallbackNotAllowed(ServiceError):
    status_code = 400
    code = ErrorCode.CALLBACK_NOT_ALLOWED
    message = "Callback URL not allowed"


class TaskAlreadyFinished(ServiceError):
    status_code = 409
    code = ErrorCode.TASK_FINISHED
    message = "Task already finished"


class TaskNotFound(ServiceError):
    status_code = 404
    code = ErrorCode.TASK_NOT_FOUND
    message = "Task not found"


class DependencyUnavailable(ServiceError):
    status_code = 503
    code = ErrorCode.DEPENDENCY_UNAVAILABLE
    message = "Service temporarily unavailable"
    retry_after_s = 5

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class StorageUnavailable(DependencyUnavailable):
    def __init__(self, cause: OSError) -> None:
        super().__init__(f"the image store is unavailable ({cause.strerror or type(cause).__name__}); retry later")
