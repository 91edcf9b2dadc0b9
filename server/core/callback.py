"""HTTP callback sender: one pooled client per process, any 2xx is success, redirects are failures.

`CallbackSender` is the asynchronous sender the delivery service runs many attempts through at
once; aiohttp because it spends a fraction of the CPU per request that other clients do, which is
most of the delivery service's cost. `CallbackManager` is the seed's synchronous interface over
the same sender.

Every connection goes through the callback network policy: names are resolved by
`PolicyResolver`, which hands aiohttp only addresses the policy has just checked, so the address
connected to is the address checked (no DNS rebinding in between) while the Host header, TLS SNI
and the certificate check keep the real name.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from server import __version__
from server.core.netpolicy import (
    CallbackPolicy,
    CallbackRefused,
    ResolutionUnavailable,
    Resolver,
    ip_literal,
    system_resolver,
)
from server.core.outbox import ATTEMPT_TIMEOUTS
from server.core.retry import parse_retry_after
from server.core.signing import WebhookSigner, webhook_id
from server.settings import Settings, as_settings

logger = logging.getLogger(__name__)

USER_AGENT = f"Xray-Inference-Service/{__version__}"
# The receiver's answer is not used; read this much of it (so the connection can be reused) at most.
MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class DeliveryAttempt:
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    retry_after_s: float | None = None  # what a 429 or 503 answer asked for


class PolicyResolver(AbstractResolver):
    """aiohttp's resolver, through the callback network policy: only checked addresses come out."""

    def __init__(self, policy: CallbackPolicy, resolve: Resolver) -> None:
        self.policy = policy
        self._resolve = resolve

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        name = host.rstrip(".")
        # getaddrinfo blocks; the default executor runs it, as aiohttp's own resolver does.
        loop = asyncio.get_running_loop()
        addresses = await loop.run_in_executor(None, self.policy.checked_addresses, name, port, self._resolve)
        return [
            {
                "hostname": name,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": socket.IPPROTO_TCP,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        """Nothing to release: lookups run in the loop's default executor."""


def _describe(exc: BaseException) -> str:
    """A short, receiver-facing account of why an attempt failed (it lands in `callback.lastError`)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS certificate refused: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = os.strerror(exc.os_error.errno) if exc.os_error.errno else str(exc.os_error)
        return f"cannot connect to {exc.host}:{exc.port}: {reason}"
    return f"{type(exc).__name__}: {exc}"


class CallbackSender:
    """Posts result payloads to callback URLs from one event loop; reuse it for the life of the process."""

    def __init__(self, config: Settings | Mapping[str, Any], resolve: Resolver = system_resolver) -> None:
        settings = as_settings(config)
        cfg = settings.callback
        self.timeout = cfg.timeout
        secret = cfg.signing_secret
        self.signer = WebhookSigner(secret.get_secret_value()) if secret else None
        self.policy = CallbackPolicy.from_settings(cfg)
        self._resolve = resolve
        self._tls = ssl.create_default_context(cafile=str(cfg.ca_bundle) if cfg.ca_bundle else None)
        self._connections = cfg.delivery_concurrency + 4
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        """The pooled session, made on first use (it belongs to the running event loop)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._connections,
                # Every new connection resolves through the policy; kept-alive ones were checked
                # when they were opened.
                use_dns_cache=False,
                resolver=PolicyResolver(self.policy, self._resolve),
                ssl=self._tls,
                keepalive_timeout=30,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=ATTEMPT_TIMEOUTS * self.timeout, sock_connect=self.timeout, sock_read=self.timeout
                ),
                headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
                auto_decompress=False,
                # One receiver's cookies must never ride along on callbacks to another tenant's
                # receiver on the same host; nor are they worth the per-request lookup.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def deliver(self, callback_url: str, body: bytes, message_id: str, task_id: str) -> DeliveryAttempt:
        """One attempt at posting `body` (JSON); never raises for network or HTTP failures, it reports them.

        `message_id` is the `webhook-id` of a signed callback: the same on every attempt of one
        task's callback, so receivers can drop duplicates. `task_id` names the task in the logs.
        """
        headers = self.signer.headers(message_id, body) if self.signer else {}
        try:
            url = URL(callback_url)
            if url.raw_host is None or url.scheme not in ("http", "https"):
                raise ValueError("not an absolute http(s) URL")
            if ip_literal(url.raw_host) is not None:  # aiohttp does not resolve literals: check them here
                self.policy.checked_addresses(url.raw_host, url.port or 0)
            # A redirect could send a patient's result somewhere the submitter never named.
            async with self._client().post(url, data=body, headers=headers, allow_redirects=False) as response:
                await self._drain(response)
        except (CallbackRefused, ResolutionUnavailable) as exc:
            logger.warning("callback refused by the network policy: task %s: %s", task_id, exc)
            return DeliveryAttempt(False, error=f"refused by the callback network policy: {exc}")
        except TimeoutError:
            logger.warning("callback timed out after %ss: task %s", self.timeout, task_id)
            return DeliveryAttempt(False, error=f"timed out after {self.timeout}s")
        except Exception as exc:  # noqa: BLE001 - any failure to deliver is reported, never raised
            logger.warning("callback failed: task %s: %s", task_id, type(exc).__name__)
            return DeliveryAttempt(False, error=_describe(exc))
        status = response.status
        if 200 <= status < 300:
            logger.debug("callback delivered: task %s, HTTP %s", task_id, status)
            return DeliveryAttempt(True, status)
        logger.warning("callback refused: task %s, HTTP %s", task_id, status)
        retry_after = None
        if status in (429, 503):
            retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
        return DeliveryAttempt(False, status, f"HTTP {status}", retry_after)

    @staticmethod
    async def _drain(response: aiohttp.ClientResponse) -> None:
        """Read the answer's body up to the cap; the status line has already decided the attempt."""
        received = 0
        try:
            async for chunk in response.content.iter_any():
                received += len(chunk)
                if received > MAX_RESPONSE_BYTES:
                    response.close()  # drop the connection rather than buffer the rest
                    return
        except (aiohttp.ClientError, TimeoutError):
            response.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class CallbackManager:
    """The seed's synchronous interface: one attempt per call, on a private event loop."""

    def __init__(self, config: Settings | Mapping[str, Any], resolve: Resolver = system_resolver) -> None:
        self._loop = asyncio.new_event_loop()
        self.sender = CallbackSender(config, resolve)

    def deliver(self, callback_url: str, payload: Mapping[str, Any], message_id: str | None = None) -> DeliveryAttempt:
        """One attempt with `payload` as JSON; `message_id` defaults to one derived from its `taskId`."""
        task_id = str(payload.get("taskId"))
        body = json.dumps(payload, separators=(",", ":")).encode()
        attempt = self.sender.deliver(callback_url, body, message_id or webhook_id(task_id), task_id)
        return self._loop.run_until_complete(attempt)

    def send_callback(self, callback_url: str, payload: Mapping[str, Any]) -> bool:
        """True when the receiver answered 2xx."""
        return self.deliver(callback_url, payload).delivered

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self.sender.close())
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
            self._loop.close()

    def __enter__(self) -> CallbackManager:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
