"""The pipeline contract: `load()` once per worker process, then `predict(image)` per task.

`SourceImage` is what the worker hands over today: the stored bytes and their format. Decoding
into pixels belongs here too, behind the same call, when real models arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class SourceImage:
    data: bytes
    extension: str  # lowercase, with the dot: ".jpg", ".dcm", …

    @property
    def size_bytes(self) -> int:
        return len(self.data)


class Pipeline(Protocol):
    """What the worker needs from a model pipeline."""

    task_type: str

    def load(self) -> None:
        """Load weights and warm up; called once per worker process, after the fork."""

    def predict(self, image: SourceImage) -> dict[str, Any]:
        """The result for one image, as JSON-ready data (it becomes the callback's `data`)."""
        ...
