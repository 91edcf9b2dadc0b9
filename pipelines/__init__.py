"""Model pipelines, one per task type, behind the `load()` / `predict()` contract of `pipelines.base`."""

from __future__ import annotations

from collections.abc import Iterable

from pipelines.base import Pipeline, SourceImage

__all__ = ["Pipeline", "SourceImage", "build_pipelines"]


def build_pipelines(mock_delay_s: float, task_types: Iterable[str]) -> dict[str, Pipeline]:
    """The pipelines of the given task types, not yet loaded (the worker loads them per process)."""
    from pipelines.ceph import CephPipeline
    from pipelines.pano import PanoPipeline

    available: dict[str, type[PanoPipeline] | type[CephPipeline]] = {"pano": PanoPipeline, "ceph": CephPipeline}
    return {name: available[name](mock_delay_s=mock_delay_s) for name in task_types}
