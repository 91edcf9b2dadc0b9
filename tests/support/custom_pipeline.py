"""A user's own pipeline, selected with `class: "tests.support.custom_pipeline:EchoPipeline"`."""

from __future__ import annotations

import os
import time
from typing import Any

from pipelines.image import DecodedImage


class EchoPipeline:
    """Reports what it was given: its options, the decoded image, and how often this process loaded it."""

    task_type = "pano"
    loads = 0

    def __init__(self, label: str) -> None:
        self.label = label

    def load(self) -> None:
        EchoPipeline.loads += 1

    def predict(self, image: DecodedImage) -> dict[str, Any]:
        return {
            "label": self.label,
            "size": [image.width, image.height],
            "dtype": str(image.pixels.dtype),
            "loadsInThisProcess": EchoPipeline.loads,
            "pid": os.getpid(),
            "model": {"name": "echo", "version": "1", "backend": "class"},
        }


class BrokenPipeline:
    """A pipeline whose model cannot be loaded."""

    def load(self) -> None:
        raise FileNotFoundError("weights.bin is missing")

    def predict(self, image: DecodedImage) -> dict[str, Any]:
        raise AssertionError("never called: load() failed")


class StubbornPipeline:
    """Ignores the soft time limit and keeps going: only the hard limit (the process killed) stops it."""

    task_type = "pano"

    def __init__(self, seconds: float = 30.0) -> None:
        self.seconds = seconds

    def load(self) -> None:
        """Nothing to load."""

    def predict(self, image: DecodedImage) -> dict[str, Any]:
        from celery.exceptions import SoftTimeLimitExceeded

        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            try:
                time.sleep(0.05)
            except SoftTimeLimitExceeded:
                continue  # a model that cannot be interrupted behaves like this
        return {"model": {"name": "stubborn", "version": "1", "backend": "class"}}
