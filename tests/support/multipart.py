"""Hand-built multipart bodies, so tests control part order, names and omissions exactly."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

Part = tuple[str, str | None, bytes]  # (field name, filename or None for a text field, content)


def encode(parts: Sequence[Part]) -> tuple[str, bytes]:
    boundary = uuid.uuid4().hex
    chunks: list[bytes] = []
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        chunks.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(chunks)


def analyze_parts(
    task_id: str | None, task_type: str | None, callback_url: str | None, image: tuple[str, bytes] | None
) -> list[Part]:
    """The analyze form with any field left out by passing None."""
    parts: list[Part] = []
    for name, value in (("taskId", task_id), ("taskType", task_type), ("callbackUrl", callback_url)):
        if value is not None:
            parts.append((name, None, value.encode()))
    if image is not None:
        parts.append(("image", image[0], image[1]))
    return parts
