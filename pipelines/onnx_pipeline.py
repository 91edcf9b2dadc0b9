"""What the ONNX pano and ceph pipelines share: opening the model once per process, and describing it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.base import PipelineLoadError
from pipelines.onnx.errors import OnnxModelError
from pipelines.onnx.session import ModelRunner


class OnnxPipeline:
    """Base of the ONNX pipelines: `load()` opens the session and warms it up; `predict()` needs it."""

    task_type = ""

    def __init__(self, model: Path, *, device: str = "auto", threads: int = 0) -> None:
        self.model_path = model
        self.device = device
        self.threads = threads
        self._runner: ModelRunner | None = None

    def load(self) -> None:
        try:
            runner = ModelRunner.open(self.model_path, device=self.device, intra_op_threads=self.threads or None)
            if runner.card.task != self.task_type:
                raise PipelineLoadError(
                    f"{self.model_path}: its card is for {runner.card.task} images, configured for {self.task_type}"
                )
            self.check_card(runner)
            runner.warm_up()  # the first task pays no lazy initialisation
        except OnnxModelError as exc:
            raise PipelineLoadError(str(exc)) from exc
        self._runner = runner

    def check_card(self, runner: ModelRunner) -> None:
        """Refuse, at load, a card whose names this pipeline cannot interpret."""

    @property
    def runner(self) -> ModelRunner:
        if self._runner is None:
            raise RuntimeError(f"{type(self).__name__}.predict() called before load()")
        return self._runner

    def model_description(self) -> dict[str, Any]:
        card = self.runner.card
        return {"name": card.name, "version": card.version, "backend": "onnx", "provider": self.runner.providers[0]}
