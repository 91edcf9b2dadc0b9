"""The mock ceph pipeline (the default backend), labelled `"model": {"name": "mock"}` in every result."""

from __future__ import annotations

from typing import Any

from pipelines.mock import MockPipeline


class MockCephPipeline(MockPipeline):
    """The seed's version-1 result: two landmarks and three measurements."""

    task_type = "ceph"

    def findings(self) -> dict[str, Any]:
        return {
            "landmarks": [
                {"name": "Sella", "x": 120.5, "y": 85.3, "confidence": 0.92},
                {"name": "Nasion", "x": 135.2, "y": 62.1, "confidence": 0.89},
            ],
            "measurements": {"SNA": 82.5, "SNB": 78.3, "ANB": 4.2},
        }
