"""Maps every failure — the service's own and the framework's — to the top-level error body."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import redis
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request

from server.errors import DependencyUnavailable, ErrorCode, ServiceError
from server.schemas import ErrorResponse

logger = logging.getLogger(__name__)


def error_response(
    status_code: int, code: int, message: str, detail: str | None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorResponse(code=code, message=message, detail=detail).model_dump()
    return JSONResponse(body, status_code=status_code, headers=headers)


# Starlette types every handler as taking Exception; each is registered for one class only.
async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
    return error_response(exc.status_code, exc.code, exc.message, exc.detail, exc.headers)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return error_response(400, ErrorCode.VALIDATION_FAILED, "Request validation failed", problems)


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    return error_response(exc.status_code, ErrorCode.HTTP_ERROR, str(exc.detail), None, exc.headers)


async def _client_gone(request: Request, _: ClientDisconnect) -> JSONResponse:
    # Nobody will read this answer; the upload was discarded.
    logger.info("client disconnected during %s %s", request.method, request.url.path)
    return error_response(400, ErrorCode.VALIDATION_FAILED, "Client disconnected", None)


async def _redis_down(request: Request, exc: redis.RedisError) -> JSONResponse:
    # Any route that reaches Redis and finds it gone: a 503 the client can retry, not a 500.
    logger.warning("Redis unavailable on %s %s: %s", request.method, request.url.path, exc)
    unavailable = DependencyUnavailable("the task store is unavailable; retry later")
    return await _service_error(request, unavailable)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # The log gets everything; the client gets nothing internal.
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, ErrorCode.HTTP_ERROR, "Internal server error", None)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(ClientDisconnect, _client_gone)  # type: ignore[arg-type]
    app.add_exception_handler(redis.RedisError, _redis_down)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)
