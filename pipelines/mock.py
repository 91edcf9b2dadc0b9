"""The seed's version-1 mock inference: fixed, deterministic results after a configurable delay."""

from __future__ import annotations

import time
from typing import Any

from pipelines.image import DecodedImage

MOCK_MODEL = {"name": "mock", "version": "1", "backend": "mock"}


class MockPipeline:
    """Base of the mock pipelines: the delay stands in for model time; the image is only described."""

    task_type = ""

    def __init__(self, *, mock_delay_s: float = 2.0) -> None:
        self.mock_delay_s = mock_delay_s
        self.loaded = False

    def load(self) -> None:
        self.loaded = True

    def predict(self, image: DecodedImage) -> dict[str, Any]:
        if not self.loaded:
            raise RuntimeError(f"{type(self).__name__}.predict() called before load()")
        if self.mock_delay_s > 0:
            time.sleep(self.mock_delay_s)
        result = self.findings()
        result["image"] = image.describe()
        result["model"] = dict(MOCK_MODEL)
        return result

    def findings(self) -> dict[str, Any]:
        raise NotImplementedError
