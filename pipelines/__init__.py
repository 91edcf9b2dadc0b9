"""Model pipelines, one per task type, behind the `load()` / `predict()` contract of `pipelines.base`.

`pano` and `ceph` each hold the seed's mock and an ONNX Runtime pipeline; a user's own pipeline
is any class with the same two methods. None of them knows the service's configuration.
"""

from __future__ import annotations

from pipelines.base import Pipeline, PipelineLoadError
from pipelines.image import DecodedImage, PixelSpacing, SpacingSource

__all__ = ["DecodedImage", "Pipeline", "PipelineLoadError", "PixelSpacing", "SpacingSource"]
