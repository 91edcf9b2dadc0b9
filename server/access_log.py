"""One log line and the metrics per HTTP request: method, path, status, duration, tenant (never the body).

A plain ASGI middleware: Starlette's BaseHTTPMiddleware would add a task and a stream copy to
every request, which the upload path cannot afford.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.metrics import HTTP_DURATION, HTTP_REQUESTS

logger = logging.getLogger("server.access")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            state: dict[str, Any] = scope.get("state") or {}
            tenant = state.get("tenant", "")
            took = time.perf_counter() - started
            took_ms = took * 1000
            # Labelled by route template, not path: task ids must not become label values.
            route = scope.get("route")
            template = getattr(route, "path", "unmatched") if isinstance(route, BaseRoute) else "unmatched"
            HTTP_REQUESTS.labels(scope["method"], template, str(status)).inc()
            HTTP_DURATION.labels(scope["method"], template).observe(took)
            # The path only: query strings are not part of this API and might carry anything.
            logger.info(
                "%s %s %d %.1f ms%s",
                scope["method"],
                scope["path"],
                status,
                took_ms,
                f" tenant={tenant}" if tenant else "",
                extra={"method": scope["method"], "path": scope["path"], "status": status, "tenant": tenant},
            )
