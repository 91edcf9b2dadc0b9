"""Panoramic radiograph pipelines: teeth (FDI numbers) and findings."""

from __future__ import annotations

from pipelines.pano.mock import MockPanoPipeline
from pipelines.pano.pipeline import PanoPipeline

__all__ = ["MockPanoPipeline", "PanoPipeline"]
