"""An onnxruntime session per process, and `ModelRunner`: a session checked against its model card.

Everything that can be wrong with a model (no card, wrong input size, wrong class count, no CUDA
when CUDA was asked for) surfaces in `ModelRunner.open()` / `warm_up()`, i.e. in a pipeline's
`load()`, never as a puzzling failure of the first task.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from pipelines.image import DecodedImage
from pipelines.onnx.card import ModelCard, load_card
from pipelines.onnx.errors import ModelMismatchError, OnnxModelError, ProviderError
from pipelines.onnx.preprocess import FloatArray, Transform, prepare

Device = Literal["auto", "cpu", "cuda"]
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
Dim = int | str | None  # as onnxruntime reports a dimension: a size, a symbolic name, or unknown
_FLOAT_TYPES: dict[str, type[np.floating[Any]]] = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def providers_for(device: str, available: Sequence[str]) -> list[str]:
    """The execution providers, by preference, for `device` given what this build offers."""
    if device == "cpu":
        return [CPU]
    if device == "auto":
        return [CUDA, CPU] if CUDA in available else [CPU]
    if device == "cuda":
        if CUDA not in available:
            offered = ", ".join(available) or "none"
            raise ProviderError(
                f"device cuda: this onnxruntime has no {CUDA} (it offers {offered}); "
                "install onnxruntime-gpu or set the device to auto or cpu"
            )
        return [CUDA, CPU]
    raise ProviderError(f"unknown device {device!r}: expected auto, cpu or cuda")


def open_session(
    model_path: Path | str,
    *,
    device: str = "auto",
    intra_op_threads: int | None = None,
    inter_op_threads: int | None = None,
) -> ort.InferenceSession:
    """A session for `model_path`; thread counts of None (or 0) leave onnxruntime's defaults."""
    path = Path(model_path)
    if not path.is_file():
        raise OnnxModelError(f"no ONNX model at {path}")
    if any(n is not None and n < 0 for n in (intra_op_threads, inter_op_threads)):
        raise ValueError("thread counts must be 0 (onnxruntime's default) or more")
    providers = providers_for(device, ort.get_available_providers())
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    if inter_op_threads is not None:
        options.inter_op_num_threads = inter_op_threads
    # onnxruntime silently falls back to the CPU when CUDA fails to start; "cuda" means CUDA or nothing.
    fallback = 0 if device == "cuda" else 1
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers, enable_fallback=fallback)
    except Exception as exc:  # onnxruntime's errors share no base class below Exception
        raise OnnxModelError(f"onnxruntime cannot load {path}: {exc}") from exc
    if device == "cuda" and CUDA not in session.get_providers():
        raise ProviderError(f"device cuda: onnxruntime could not start {CUDA} for {path}")
    return session


def _fits(dim: Dim, size: int) -> bool:
    return not isinstance(dim, int) or dim == size


def output_mismatch(shape: Sequence[Dim], card: ModelCard) -> str | None:
    """Why an output of this shape cannot be what the card describes; None if it can.

    Symbolic or unknown dimensions fit anything, so a dynamic graph passes here and is checked
    again with the concrete shape of its first output.
    """
    count, output = card.output_channels, card.output
    if output.kind == "heatmap":
        if len(shape) != 4 or not _fits(shape[0], 1) or not _fits(shape[1], count):
            return f"a heatmap model with {count} landmarks needs an output of shape (1, {count}, h, w)"
        return None
    width = output.values_per_box(count)
    if output.layout == "v5":
        if len(shape) != 3 or not _fits(shape[0], 1) or not _fits(shape[2], width):
            return f"a v5 detector with {count} classes needs an output of shape (1, N, {width})"
        return None
    if len(shape) != 3 or not _fits(shape[0], 1) or not (_fits(shape[1], width) or _fits(shape[2], width)):
        return f"a v8 detector with {count} classes needs an output of shape (1, {width}, N) or (1, N, {width})"
    return None


class ModelRunner:
    """A model card and the session of its model, checked against each other."""

    def __init__(self, card: ModelCard, session: ort.InferenceSession, *, source: str = "the model") -> None:
        self.card = card
        self.session = session
        self._source = source
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise ModelMismatchError(f"{source} has {len(inputs)} inputs ({names}); this backend feeds exactly one")
        graph_input = inputs[0]
        if card.input.name is not None and card.input.name != graph_input.name:
            raise ModelMismatchError(
                f"{source}: the card names input {card.input.name!r}, the model has {graph_input.name!r}"
            )
        self.input_name: str = graph_input.name
        self._input_dtype = self._float_type(graph_input, "input")
        wanted = (1, card.input.channels, card.input.height, card.input.width)
        shape: list[Dim] = list(graph_input.shape)
        if len(shape) != 4 or not all(_fits(d, w) for d, w in zip(shape, wanted, strict=True)):
            raise ModelMismatchError(
                f"{source}: input {self.input_name!r} has shape {shape}, the card describes {list(wanted)} "
                "(1, channels, height, width)"
            )
        self.output_name: str = outputs[0].name
        self._float_type(outputs[0], "output")
        self._check_output(list(outputs[0].shape))
        self._output_checked = all(isinstance(d, int) for d in outputs[0].shape)

    @classmethod
    def open(
        cls,
        model_path: Path | str,
        *,
        device: str = "auto",
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
    ) -> ModelRunner:
        """Read the card beside `model_path`, open the session and check one against the other."""
        path = Path(model_path)
        if not path.is_file():
            raise OnnxModelError(f"no ONNX model at {path}")
        card = load_card(path)
        session = open_session(
            path, device=device, intra_op_threads=intra_op_threads, inter_op_threads=inter_op_threads
        )
        return cls(card, session, source=str(path))

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def _float_type(self, arg: Any, role: str) -> type[np.floating[Any]]:
        dtype = _FLOAT_TYPES.get(arg.type)
        if dtype is None:
            raise ModelMismatchError(f"{self._source}: {role} {arg.name!r} is {arg.type}; float or float16 needed")
        return dtype

    def _check_output(self, shape: Sequence[Dim]) -> None:
        problem = output_mismatch(shape, self.card)
        if problem is not None:
            raise ModelMismatchError(
                f"{self._source}: output {self.output_name!r} has shape {list(shape)}; {problem} "
                f"(card {self.card.name} {self.card.version})"
            )

    def run(self, batch: FloatArray) -> npt.NDArray[Any]:
        """The model's first output for `batch`, (1, channels, height, width) float32 — the one decoded.

        Only that output is fetched: other heads (a mask, features) would be copied out for nothing.
        """
        feed = batch if self._input_dtype is np.float32 else batch.astype(self._input_dtype)
        result = np.asarray(self.session.run([self.output_name], {self.input_name: feed})[0])
        if not self._output_checked:  # a dynamic output shape: check the first concrete one
            self._check_output(result.shape)
            self._output_checked = True
        return result

    def infer(self, image: DecodedImage) -> tuple[npt.NDArray[np.float32], Transform]:
        """Preprocess `image`, run the model, and return its first output with the transform used."""
        batch, transform = prepare(image, self.card.input)
        return np.asarray(self.run(batch), dtype=np.float32), transform

    def warm_up(self) -> None:
        """Run one zero batch, so lazy initialisation (and a dynamic output's check) happens at load."""
        spec = self.card.input
        self.run(np.zeros((1, spec.channels, spec.height, spec.width), dtype=np.float32))
