"""The pipeline contract: `load()` once per worker process, then `predict(image)` per task.

The worker decodes the stored file first (`pipelines.decode`), so every pipeline receives the same
`DecodedImage` — grayscale pixels, size, pixel spacing and its source — whatever the file format.
"""

from __future__ import annotations

from typing import Any, Protocol

from pipelines.image import DecodedImage


class PipelineLoadError(Exception):
    """A pipeline could not be loaded (missing or incompatible model, bad model card, …)."""


class Pipeline(Protocol):
    """What the worker needs from a model pipeline."""

    task_type: str

    def load(self) -> None:
        """Load weights and warm up; called once per worker process, after the fork."""

    def predict(self, image: DecodedImage) -> dict[str, Any]:
        """The result for one image, as JSON-ready data (it becomes the callback's `data`)."""
        ...
