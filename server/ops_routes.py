"""Routes for operators and orchestrators: health, liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from typing import Any, Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE
from pydantic import BaseModel, Field

from server.health import HealthMonitor, HealthReport

router = APIRouter()


class HealthBody(BaseModel):
    """The seed's health body, plus what was checked."""

    status: Literal["healthy", "unhealthy"]
    service: Literal["api"] = "api"
    checks: dict[str, Any] = Field(
        description="redis and broker ({ok, latencyMs | error}); workers: per queue {ok, live, pipelineFailed}"
    )


class ProbeBody(BaseModel):
    status: Literal["alive", "ready", "not ready"]


async def _report(request: Request) -> HealthReport:
    monitor: HealthMonitor = request.app.state.health
    return await anyio.to_thread.run_sync(monitor.report)


_UNHEALTHY: dict[int | str, dict[str, Any]] = {
    503: {"model": HealthBody, "description": "A check failed; `checks` says which"}
}


@router.get("/health", response_model=HealthBody, responses=_UNHEALTHY)
@router.get("/api/v1/health", response_model=HealthBody, responses=_UNHEALTHY)
async def health(request: Request) -> JSONResponse:
    """Redis, the broker and a live worker for every queue; 503 when any of them is missing."""
    report = await _report(request)
    body = HealthBody(status="healthy" if report.healthy else "unhealthy", checks=report.checks)
    return JSONResponse(body.model_dump(), status_code=200 if report.healthy else 503)


@router.get("/livez", response_model=ProbeBody)
async def livez() -> ProbeBody:
    """The API process answers; nothing else is checked (for restarts)."""
    return ProbeBody(status="alive")


@router.get("/readyz", response_model=ProbeBody, responses={503: {"model": ProbeBody}})
async def readyz(request: Request) -> JSONResponse:
    """Redis and the broker are reachable, so a request can be accepted (for load balancers)."""
    report = await _report(request)
    body = ProbeBody(status="ready" if report.ready else "not ready")
    return JSONResponse(body.model_dump(), status_code=200 if report.ready else 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this API (all its processes) and the depth of each queue."""
    body = await anyio.to_thread.run_sync(generate_latest, request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE)
