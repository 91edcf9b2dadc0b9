"""Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over id.timestamp.body.

The secret is `whsec_` followed by the base64 key, as receivers' libraries expect it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret; `ValueError` when it is not one."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"a signing secret is {SECRET_PREFIX} followed by base64") from None
    if len(key) < 16:
        raise ValueError("a signing secret must hold at least 16 bytes of key")
    return key


class WebhookSigner:
    def __init__(self, secret: str) -> None:
        self._key = decode_secret(secret)

    def signature(self, message_id: str, timestamp: int, body: bytes) -> str:
        signed = f"{message_id}.{timestamp}.".encode() + body
        digest = hmac.new(self._key, signed, hashlib.sha256).digest()
        return "v1," + base64.b64encode(digest).decode()

    def headers(self, message_id: str, body: bytes) -> dict[str, str]:
        """The three headers of one attempt: the id stays, the timestamp is the attempt's own."""
        sent_at = int(time.time())
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(sent_at),
            "webhook-signature": self.signature(message_id, sent_at, body),
        }


def webhook_id(task_ref: str) -> str:
    """The `webhook-id` of a task's callback: the same on every attempt, different per tenant."""
    return "msg_" + task_ref.replace(":", "_")
