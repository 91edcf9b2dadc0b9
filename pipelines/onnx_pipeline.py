"""What the ONNX pano and ceph pipelines share: opening the model once per process, and describing it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Generic, TypeVar

from pipelines.base import PipelineLoadError
from pipelines.onnx.card import HeatmapOutputSpec, YoloOutputSpec
from pipelines.onnx.errors import OnnxModelError
from pipelines.onnx.session import ModelRunner

OutputT = TypeVar("OutputT", YoloOutputSpec, HeatmapOutputSpec)


class OnnxPipeline(Generic[OutputT]):
    """Base of the ONNX pipelines: `load()` opens, checks and warms the session; `predict()` needs it.

    Everything that depends only on the model and its card is worked out here, once per process.
    """

    task_type = ""
    output_type: type[OutputT]

    def __init__(self, model: Path, *, device: str = "auto", threads: int = 0) -> None:
        self.model_path = model
        self.device = device
        self.threads = threads
        self._runner: ModelRunner | None = None
        self._output: OutputT | None = None
        self.model: dict[str, Any] = {}  # the `model` block of every result

    def load(self) -> None:
        try:
            runner = ModelRunner.open(self.model_path, device=self.device, intra_op_threads=self.threads or None)
            output = runner.card.output
            # The card ties its task to its output kind, so a card for this task has the right output.
            if runner.card.task != self.task_type or not isinstance(output, self.output_type):
                raise PipelineLoadError(
                    f"{self.model_path}: its card is for {runner.card.task} images, configured for {self.task_type}"
                )
            self.prepare(runner)
            runner.warm_up()  # the first task pays no lazy initialisation
        except OnnxModelError as exc:
            raise PipelineLoadError(str(exc)) from exc
        card = runner.card
        self.model = {"name": card.name, "version": card.version, "backend": "onnx", "provider": runner.providers[0]}
        self._runner, self._output = runner, output

    def prepare(self, runner: ModelRunner) -> None:
        """Interpret the card's names once, at load; refuse a card this pipeline cannot use."""

    @property
    def runner(self) -> ModelRunner:
        if self._runner is None:
            raise RuntimeError(f"{type(self).__name__}.predict() called before load()")
        return self._runner

    @property
    def output(self) -> OutputT:
        if self._output is None:
            raise RuntimeError(f"{type(self).__name__}.predict() called before load()")
        return self._output
