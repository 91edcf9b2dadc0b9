"""Lateral cephalogram pipelines: landmarks and orthodontic measurements."""

from __future__ import annotations

from pipelines.ceph.mock import MockCephPipeline
from pipelines.ceph.pipeline import CephPipeline

__all__ = ["CephPipeline", "MockCephPipeline"]
