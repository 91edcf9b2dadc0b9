"""The HTTP API: app factory, lifespan-owned clients, routes (parse → call → return)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from server import SERVICE_NAME, __version__, batch, ops_routes, task_routes
from server.access_log import AccessLog
from server.auth import ApiKeys, TenantDep
from server.core.netpolicy import CallbackPolicy
from server.core.persistence import TaskPersistence
from server.core.storage import make_storage
from server.error_handlers import install_error_handlers
from server.health import HealthMonitor
from server.imageformat import ALLOWED_EXTENSIONS
from server.lifecycle import TaskLifecycle
from server.metrics import queue_depth_collectors
from server.metrics import registry as metrics_registry
from server.schemas import (
    INTERNAL_ERROR,
    MAX_CALLBACK_URL_LENGTH,
    TASK_ID_PATTERN,
    UNAUTHORIZED,
    AnalyzeResponse,
    ServiceInfo,
    error_responses,
)
from server.settings import TASK_TYPES, Settings, get_settings
from server.submission import Submitter
from server.task_queue import task_queue
from server.worker import broker_ping

logger = logging.getLogger(__name__)

# A staging file untouched this long belongs to no upload in progress (they write every MiB).
STALE_UPLOAD_S = 3600.0


_ANALYZE_ERRORS = error_responses(
    {
        400: "Validation failed (10001): a missing, repeated-image, too long or bad field, or a body that is not "
        "multipart/form-data; unsupported or mismatched image (10003); callbackUrl not allowed by the callback "
        "network policy (10008)",
        401: UNAUTHORIZED,
        409: "taskId already exists (10002)",
        413: "Upload larger than limits.max_upload_mb (10004)",
        500: INTERNAL_ERROR,
        503: "Redis, the broker, DNS or the image store is unavailable (10007); retry after Retry-After seconds",
    }
)

# Hand-written because the route streams the body itself (server.upload) instead of declaring Form
# and File parameters, which would make FastAPI buffer the whole upload before the route runs.
_ANALYZE_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Text fields sent before the image are validated before any of the image is stored.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["taskId", "taskType", "callbackUrl", "image"],
                    "properties": {
                        "taskId": {
                            "type": "string",
                            "format": "uuid",
                            "pattern": TASK_ID_PATTERN,
                            "description": "UUID version 4 in canonical 8-4-4-4-12 hex form, either case; the "
                            "same UUID in another case is the same task, returned lowercase",
                            "examples": ["1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"],
                        },
                        "taskType": {
                            "type": "string",
                            "enum": ["pano", "ceph"],
                            "description": "pano: panoramic radiograph; ceph: lateral cephalogram",
                        },
                        "callbackUrl": {
                            "type": "string",
                            "format": "uri",
                            "maxLength": MAX_CALLBACK_URL_LENGTH,
                            "description": "Absolute http:// or https:// URL with a host, no whitespace or control "
                            "characters, allowed by the callback network policy; the result is POSTed here",
                            "examples": ["http://localhost:5000/callback"],
                        },
                        "image": {
                            "type": "string",
                            "format": "binary",
                            "description": "A file part with a filename whose extension is one of "
                            f"{', '.join(ALLOWED_EXTENSIONS)} and whose content is that format, at most "
                            "limits.max_upload_mb",
                        },
                    },
                }
            }
        },
    }
}


def _without_framework_422(document: dict[str, Any]) -> dict[str, Any]:
    """Drop the 422 FastAPI documents for routes with parameters: validation errors here are 400/10001."""
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API; clients are opened in the lifespan, so building it connects to nothing."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        persistence = TaskPersistence(settings)
        storage = await anyio.to_thread.run_sync(make_storage, settings)  # local: creates the directory
        swept = await anyio.to_thread.run_sync(storage.sweep_staged, STALE_UPLOAD_S)
        if swept:
            logger.warning("removed %d unfinished upload(s) left by an API process that died", swept)
        if not app.state.api_keys.enabled:
            logger.warning(
                "NO API KEYS CONFIGURED: the API is open to anyone who can reach it; "
                "set XRAY__SECURITY__API_KEYS to require keys"
            )
        app.state.lifecycle = TaskLifecycle(persistence, storage, keep_images=settings.storage.keep_images)
        policy = CallbackPolicy.from_settings(settings.callback)
        queue = task_queue(settings, persistence)
        app.state.submitter = Submitter(queue, storage, settings.limits.max_upload_bytes, policy)
        limits = settings.limits
        app.state.batch = batch.BatchSubmitter(app.state.submitter, limits.max_batch, limits.max_batch_bytes)
        app.state.health = HealthMonitor(persistence.redis_client, settings.redis.key_prefix, broker_ping, TASK_TYPES)
        app.state.metrics_registry = metrics_registry(*queue_depth_collectors(settings.broker_url, TASK_TYPES))
        logger.info("API ready: storage %s, Redis %s:%s", storage.root, settings.redis.host, settings.redis.port)
        try:
            yield
        finally:
            queue.close()
            persistence.close()

    app = FastAPI(
        title=SERVICE_NAME, description="Asynchronous dental X-ray AI inference", version=__version__, lifespan=lifespan
    )
    app.state.api_keys = ApiKeys(settings.security.api_keys)
    cors = settings.api
    if cors.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors.cors_origins,
            allow_credentials=cors.cors_allow_credentials,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(AccessLog)
    install_error_handlers(app)
    framework_openapi = app.openapi
    app.openapi = lambda: _without_framework_422(framework_openapi())  # type: ignore[method-assign]

    # Routes are tried in the order they were added, and passing an included router costs some
    # microseconds: the route every upload takes comes first.
    @app.post(
        "/api/v1/analyze",
        status_code=202,
        response_model=AnalyzeResponse,
        responses=_ANALYZE_ERRORS,
        openapi_extra=_ANALYZE_FORM,
    )
    async def analyze(request: Request, tenant: TenantDep) -> AnalyzeResponse:
        """Queue an X-ray for analysis; the result is POSTed to callbackUrl when it is ready."""
        # Read from the app's state, not as a dependency: solving one costs microseconds per upload.
        submitter: Submitter = request.app.state.submitter
        return await submitter.submit(request, tenant)

    @app.get("/", response_model=ServiceInfo)
    async def root() -> dict[str, str]:
        """Service name, version and state."""
        return {"service": SERVICE_NAME, "version": __version__, "status": "running"}

    app.include_router(task_routes.router)
    app.include_router(batch.router)
    app.include_router(ops_routes.router)
    return app
