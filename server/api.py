"""The HTTP API: app factory, lifespan-owned clients, routes (parse → call → return)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from server import SERVICE_NAME, __version__, task_routes
from server.access_log import AccessLog
from server.auth import ApiKeys, TenantDep
from server.core.netpolicy import CallbackPolicy
from server.core.persistence import TaskPersistence
from server.core.storage import LocalStorage
from server.error_handlers import install_error_handlers
from server.imageformat import ALLOWED_EXTENSIONS
from server.lifecycle import TaskLifecycle
from server.schemas import MAX_CALLBACK_URL_LENGTH, AnalyzeResponse, ErrorResponse
from server.settings import Settings, get_settings
from server.submission import Submitter
from server.worker import enqueue_analysis

logger = logging.getLogger(__name__)

# A staging file untouched this long belongs to no upload in progress (they write every MiB).
STALE_UPLOAD_S = 3600.0


async def get_submitter(request: Request) -> Submitter:  # async: a plain def would cost a thread hop
    submitter: Submitter = request.app.state.submitter
    return submitter


SubmitterDep = Annotated[Submitter, Depends(get_submitter)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Validation failed (10001), unsupported image (10003), callbackUrl not allowed (10008)",
        409: "taskId already exists (10002)",
        413: "Upload larger than the limit (10004)",
        503: "Redis or the broker is unavailable (10007); retry after Retry-After seconds",
    }.items()
}

_ANALYZE_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["taskId", "taskType", "callbackUrl", "image"],
                    "properties": {
                        "taskId": {"type": "string", "format": "uuid", "description": "UUID v4, canonical form"},
                        "taskType": {"type": "string", "enum": ["pano", "ceph"]},
                        "callbackUrl": {"type": "string", "format": "uri", "maxLength": MAX_CALLBACK_URL_LENGTH},
                        "image": {
                            "type": "string",
                            "format": "binary",
                            "description": f"X-ray image; extension one of {', '.join(ALLOWED_EXTENSIONS)}",
                        },
                    },
                }
            }
        },
    }
}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API; clients are opened in the lifespan, so building it connects to nothing."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        persistence = TaskPersistence(settings)
        storage = await anyio.to_thread.run_sync(LocalStorage, settings.api.upload_dir)  # creates the directory
        swept = await anyio.to_thread.run_sync(storage.sweep_staged, STALE_UPLOAD_S)
        if swept:
            logger.warning("removed %d unfinished upload(s) left by an API process that died", swept)
        if not app.state.api_keys.enabled:
            logger.warning(
                "NO API KEYS CONFIGURED: the API is open to anyone who can reach it; "
                "set XRAY__SECURITY__API_KEYS to require keys"
            )
        app.state.lifecycle = TaskLifecycle(persistence, storage, keep_images=settings.storage.keep_images)
        cfg = settings.callback
        policy = CallbackPolicy.of(cfg.allow_private_networks, cfg.allowed_cidrs, cfg.allowed_hosts)
        app.state.submitter = Submitter(
            persistence, storage, enqueue_analysis, settings.limits.max_upload_bytes, policy
        )
        logger.info("API ready: storage %s, Redis %s:%s", storage.root, settings.redis.host, settings.redis.port)
        try:
            yield
        finally:
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
    app.include_router(task_routes.router)

    @app.get("/")
    async def root() -> dict[str, str]:
        """Service name, version and state."""
        return {"service": SERVICE_NAME, "version": __version__, "status": "running"}

    @app.get("/health")
    @app.get("/api/v1/health")
    async def health() -> dict[str, str]:
        """Liveness of the API process."""
        return {"status": "healthy", "service": "api"}

    @app.post(
        "/api/v1/analyze",
        status_code=202,
        response_model=AnalyzeResponse,
        responses=_ERRORS,
        openapi_extra=_ANALYZE_FORM,
    )
    async def analyze(request: Request, submitter: SubmitterDep, tenant: TenantDep) -> AnalyzeResponse:
        """Queue an X-ray for analysis; the result is POSTed to callbackUrl when it is ready."""
        return await submitter.submit(request, tenant)

    return app
