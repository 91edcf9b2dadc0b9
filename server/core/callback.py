"""HTTP callback sender: one pooled client per process, any 2xx is success, redirects are failures."""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from server import __version__
from server.core.netpolicy import CallbackPolicy, CallbackRefused, ResolutionUnavailable, Resolver, system_resolver
from server.core.retry import parse_retry_after
from server.core.signing import WebhookSigner
from server.settings import Settings, as_settings

logger = logging.getLogger(__name__)

USER_AGENT = f"Xray-Inference-Service/{__version__}"
# The receiver's answer is not used; read this much of it (so the connection can be reused) at most.
MAX_RESPONSE_BYTES = 64 * 1024


def _drain(response: httpx.Response) -> None:
    received = 0
    for chunk in response.iter_raw():
        received += len(chunk)
        if received > MAX_RESPONSE_BYTES:
            break  # closing the unread rest drops the connection instead of buffering it


@dataclass(frozen=True)
class DeliveryAttempt:
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    retry_after_s: float | None = None  # what a 429 or 503 answer asked for


class CallbackManager:
    """Posts result payloads to callback URLs; reuse one instance for the life of the process."""

    def __init__(
        self,
        config: Settings | Mapping[str, Any],
        client: httpx.Client | None = None,
        resolve: Resolver = system_resolver,
    ) -> None:
        settings = as_settings(config)
        self.timeout = settings.callback.timeout
        secret = settings.callback.signing_secret
        self.signer = WebhookSigner(secret.get_secret_value()) if secret else None
        cfg = settings.callback
        self.policy = CallbackPolicy.of(cfg.allow_private_networks, cfg.allowed_cidrs, cfg.allowed_hosts)
        self.resolve = resolve
        ca_bundle = settings.callback.ca_bundle
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(self.timeout),
            verify=ssl.create_default_context(cafile=str(ca_bundle)) if ca_bundle else True,
            # A redirect could send a patient's result somewhere the submitter never named.
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
            limits=httpx.Limits(
                max_connections=settings.callback.delivery_concurrency + 4,
                max_keepalive_connections=min(settings.callback.delivery_concurrency, 32),
                keepalive_expiry=30,
            ),
        )

    def deliver(self, callback_url: str, payload: Mapping[str, Any], message_id: str | None = None) -> DeliveryAttempt:
        """One attempt; never raises for network or HTTP failures, it reports them.

        `message_id` is the `webhook-id` of a signed callback: the same on every attempt of one
        task's callback, so receivers can drop duplicates. It defaults to one derived from the task.
        """
        task_id = payload.get("taskId")
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = self.signer.headers(message_id or f"msg_{task_id}", body) if self.signer else {}
        try:
            url, extensions = self._pinned(callback_url, headers)
        except (CallbackRefused, ResolutionUnavailable) as exc:
            logger.warning("callback refused by the network policy: task %s: %s", task_id, exc)
            return DeliveryAttempt(False, error=f"refused by the callback network policy: {exc}")
        except Exception as exc:  # noqa: BLE001 - an unusable URL is reported, never raised
            return DeliveryAttempt(False, error=f"{type(exc).__name__}: {exc}")
        try:
            with (
                self.client.stream("POST", url, content=body, headers=headers, extensions=extensions) as response,
                contextlib.suppress(httpx.HTTPError),  # the status line decided; the body is extra
            ):
                _drain(response)
        except httpx.TimeoutException:
            logger.warning("callback timed out after %ss: task %s", self.timeout, task_id)
            return DeliveryAttempt(False, error=f"timed out after {self.timeout}s")
        except Exception as exc:  # noqa: BLE001 - any failure to deliver is reported, never raised
            logger.warning("callback failed: task %s: %s", task_id, type(exc).__name__)
            return DeliveryAttempt(False, error=f"{type(exc).__name__}: {exc}")
        if response.is_success:
            logger.debug("callback delivered: task %s, HTTP %s", task_id, response.status_code)
            return DeliveryAttempt(True, response.status_code)
        logger.warning("callback refused: task %s, HTTP %s", task_id, response.status_code)
        retry_after = None
        if response.status_code in (429, 503):
            retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
        return DeliveryAttempt(False, response.status_code, f"HTTP {response.status_code}", retry_after)

    def _pinned(self, callback_url: str, headers: dict[str, str]) -> tuple[httpx.URL, dict[str, Any]]:
        """The URL to connect to: the host replaced by an address the policy checked just now.

        `Host` (and TLS SNI and certificate checks, through `sni_hostname`) keep the real name.
        """
        url = httpx.URL(callback_url)
        host, _, addresses = self.policy.check_url(callback_url, self.resolve)
        if url.host == addresses[0]:
            return url, {}
        headers["Host"] = url.netloc.decode("ascii")
        if url.scheme != "https":
            return url.copy_with(host=addresses[0]), {}
        # Pooled connections are matched by address alone: a TLS connection checked for one name
        # must not carry a request for another name on the same address, so it is not kept.
        headers["Connection"] = "close"
        return url.copy_with(host=addresses[0]), {"sni_hostname": host}

    def send_callback(self, callback_url: str, payload: Mapping[str, Any]) -> bool:
        """The seed's interface: True when the receiver answered 2xx."""
        return self.deliver(callback_url, payload).delivered

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> CallbackManager:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
