"""The mock pano pipeline (the default backend), labelled `"model": {"name": "mock"}` in every result."""

from __future__ import annotations

from typing import Any

from pipelines.mock import MockPipeline


class MockPanoPipeline(MockPipeline):
    """The seed's version-1 result: three teeth and one caries finding."""

    task_type = "pano"

    def findings(self) -> dict[str, Any]:
        return {
            "teeth": [
                {"id": 11, "status": "healthy", "confidence": 0.95},
                {"id": 12, "status": "healthy", "confidence": 0.93},
                {"id": 21, "status": "caries", "confidence": 0.87},
            ],
            "diseases": [{"type": "caries", "location": "tooth_21", "severity": "mild", "confidence": 0.87}],
        }
