"""Which pipeline each task type runs, built and loaded in a worker process.

Per task type the configuration picks the mock (the default), an ONNX model with its card, or a
pipeline class of the user's own (`class: "package.module:ClassName"`). The pipelines themselves
(`pipelines/`) know nothing of the service's configuration.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from pipelines.base import Pipeline, PipelineLoadError
from pipelines.ceph import CephPipeline, MockCephPipeline
from pipelines.pano import MockPanoPipeline, PanoPipeline
from server.metrics import PIPELINE_LOAD
from server.settings import PipelineSettings, PipelinesSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadReport:
    """How loading one task type's pipeline went, as the worker reports it."""

    task_type: str
    kind: str
    loaded: bool
    seconds: float
    error: str | None = None


def _user_class(spec: str) -> type[Pipeline]:
    module_name, _, class_name = spec.partition(":")
    try:
        found: type[Pipeline] = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise PipelineLoadError(f"cannot import {spec}: {exc}") from exc
    return found


def build_pipeline(task_type: str, settings: PipelinesSettings) -> Pipeline:
    """The configured pipeline of a task type, not yet loaded."""
    chosen: PipelineSettings = settings.for_task_type(task_type)
    if chosen.class_:
        return _user_class(chosen.class_)(**chosen.options)
    if chosen.backend == "onnx" and chosen.model is not None:  # settings insist on a model for onnx
        onnx_pipelines: dict[str, type[PanoPipeline] | type[CephPipeline]] = {
            "pano": PanoPipeline,
            "ceph": CephPipeline,
        }
        return onnx_pipelines[task_type](chosen.model, device=chosen.device, threads=chosen.threads)
    mocks: dict[str, type[MockPanoPipeline] | type[MockCephPipeline]] = {
        "pano": MockPanoPipeline,
        "ceph": MockCephPipeline,
    }
    return mocks[task_type](mock_delay_s=settings.mock_delay_s)


def load_pipelines(
    settings: PipelinesSettings, task_types: Iterable[str]
) -> tuple[dict[str, Pipeline], list[LoadReport]]:
    """Build and load each task type's pipeline; one that fails is reported, not raised.

    A worker keeps serving the task types whose pipelines loaded and reports the others, rather
    than failing every task of a broken model with an obscure error.
    """
    loaded: dict[str, Pipeline] = {}
    reports = []
    for task_type in task_types:
        kind = settings.for_task_type(task_type).kind
        started = time.perf_counter()
        try:
            pipeline = build_pipeline(task_type, settings)
            pipeline.load()
        except Exception as exc:  # a user's model can fail in any way; the report says how
            seconds = time.perf_counter() - started
            error = str(exc) if isinstance(exc, PipelineLoadError) else f"{type(exc).__name__}: {exc}"
            logger.error("pipeline %s (%s) failed to load after %.1f s: %s", task_type, kind, seconds, error)
            reports.append(LoadReport(task_type, kind, False, seconds, error))
            continue
        seconds = time.perf_counter() - started
        logger.info("pipeline %s (%s) loaded in %.2f s", task_type, kind, seconds)
        PIPELINE_LOAD.labels(task_type, kind).set(seconds)
        loaded[task_type] = pipeline
        reports.append(LoadReport(task_type, kind, True, seconds))
    return loaded, reports
