"""Model pipelines, one per task type, behind the `load()` / `predict()` contract of `pipelines.base`."""

from __future__ import annotations

from pipelines.base import Pipeline, SourceImage

__all__ = ["Pipeline", "SourceImage", "build_pipelines"]


def build_pipelines(mock_delay_s: float) -> dict[str, Pipeline]:
    """The pipeline for each task type, not yet loaded (the worker loads them in each process)."""
    from pipelines.ceph import CephPipeline
    from pipelines.pano import PanoPipeline

    return {"pano": PanoPipeline(mock_delay_s=mock_delay_s), "ceph": CephPipeline(mock_delay_s=mock_delay_s)}
