"""The model card: what an `.onnx` file expects as input and how to read its output.

The card sits beside the model with the same stem (`model.onnx` → `model.yaml`, `model.yml` or
`model.json`), so a model and its description are deployed, copied and versioned together. Exactly
one card must exist: two would leave it unclear which one the person deploying edited.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.onnx.errors import ModelCardError

CARD_SUFFIXES = (".yaml", ".yml", ".json")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassSpec(_Strict):
    """One detector class; `tooth`, `finding` and `severity` are checked by the pano pipeline."""

    name: str = Field(min_length=1)
    tooth: int | None = None
    finding: str | None = None
    severity: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _name_alone(cls, data: Any) -> Any:
        # `classes: [caries, ...]` is the common case; a mapping is only needed for the extras.
        return {"name": data} if isinstance(data, str) else data


class InputSpec(_Strict):
    """How a decoded image becomes the model's input tensor (see `pipelines.onnx.preprocess`)."""

    name: str | None = Field(default=None, min_length=1)  # None: the session's only input
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    channels: Literal[1, 3] = 1
    resize: Literal["letterbox", "stretch"] = "letterbox"
    pad_value: float = Field(default=0.0, ge=0, le=1)  # in [0, 1] units, before mean/std (YOLO: 114/255)
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    @field_validator("std")
    @classmethod
    def _positive_std(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(s <= 0 for s in value):
            raise ValueError("every std value must be positive")
        return value

    @model_validator(mode="after")
    def _per_channel(self) -> InputSpec:
        for field in ("mean", "std"):
            values = getattr(self, field)
            if len(values) not in (1, self.channels):
                wanted = "1 value" if self.channels == 1 else f"1 or {self.channels} values"
                raise ValueError(f"{field} needs {wanted} (one per channel, or one for all), got {len(values)}")
        return self

    def channel_mean(self, channel: int) -> float:
        return self.mean[channel if len(self.mean) > 1 else 0]

    def channel_std(self, channel: int) -> float:
        return self.std[channel if len(self.std) > 1 else 0]


class YoloOutputSpec(_Strict):
    """A YOLO-style detection head (see `pipelines.onnx.detection` for the layouts)."""

    kind: Literal["yolo"]
    layout: Literal["v8", "v5"] = "v8"
    score_threshold: float = Field(default=0.25, ge=0, le=1)
    iou_threshold: float = Field(default=0.45, gt=0, le=1)
    max_detections: int = Field(default=300, ge=1)

    def values_per_box(self, num_classes: int) -> int:
        """cx, cy, w, h, v5's objectness, and one score per class."""
        return (5 if self.layout == "v5" else 4) + num_classes


class HeatmapOutputSpec(_Strict):
    """One heatmap channel per landmark (see `pipelines.onnx.heatmap`)."""

    kind: Literal["heatmap"]
    min_confidence: float = Field(default=0.0, ge=0, le=1)


OutputSpec = Annotated[YoloOutputSpec | HeatmapOutputSpec, Field(discriminator="kind")]

# A task type's pipeline only knows how to read one kind of output.
_KIND_OF_TASK = {"pano": "yolo", "ceph": "heatmap"}


class ModelCard(_Strict):
    """A model card, validated; `load_card()` reads one from beside its model."""

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    task: Literal["pano", "ceph"]
    input: InputSpec
    output: OutputSpec
    classes: tuple[ClassSpec, ...] | None = None
    landmarks: tuple[str, ...] | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_text(cls, value: Any) -> Any:
        # YAML reads `version: 1.0` as a float, and "1.10" would become 1.1: insist on quotes.
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f'must be a string; quote it, e.g. version: "{value}"')
        return value

    @model_validator(mode="after")
    def _names_fit_kind(self) -> ModelCard:
        kind = self.output.kind
        if _KIND_OF_TASK[self.task] != kind:
            raise ValueError(f"task {self.task} needs output.kind {_KIND_OF_TASK[self.task]}, not {kind}")
        wanted, unwanted = ("classes", "landmarks") if kind == "yolo" else ("landmarks", "classes")
        names = self.class_names if kind == "yolo" else list(self.landmarks or ())
        if not names:
            raise ValueError(f"output.kind {kind} needs a non-empty {wanted} list")
        if getattr(self, unwanted) is not None:
            raise ValueError(f"output.kind {kind} takes {wanted}, not {unwanted}")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"{wanted} must be unique; repeated: {', '.join(duplicates)}")
        return self

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes or ()]

    @property
    def output_channels(self) -> int:
        """Classes of a detector or landmarks of a heatmap model: what the output must encode."""
        return len(self.classes or ()) if self.output.kind == "yolo" else len(self.landmarks or ())


def card_path(model_path: Path) -> Path:
    """The one card beside `model_path`; `ModelCardError` when there is none or more than one."""
    found = [p for p in (model_path.with_suffix(s) for s in CARD_SUFFIXES) if p.is_file()]
    if not found:
        tried = ", ".join(model_path.with_suffix(s).name for s in CARD_SUFFIXES)
        raise ModelCardError(f"no model card for {model_path}: expected one of {tried} beside it")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ModelCardError(f"several model cards for {model_path} ({names}): keep exactly one")
    return found[0]


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelCardError(f"cannot read model card {path}: {exc}") from exc
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ModelCardError(f"model card {path} is not valid {path.suffix[1:].upper()}: {exc}") from exc


def _describe(error: Mapping[str, Any]) -> str:
    # Drop the union tag pydantic puts into the location ("output.yolo.layout" → "output.layout").
    parts = [str(p) for p in error["loc"] if not (error["loc"][:1] == ("output",) and p in ("yolo", "heatmap"))]
    message = str(error["msg"]).removeprefix("Value error, ")
    if not parts:
        return message
    quiet = error["type"] in ("missing", "extra_forbidden") or isinstance(error["input"], dict | list)
    shown = "" if quiet else f" (got {error['input']!r})"
    return f"{'.'.join(parts)}: {message}{shown}"


def parse_card(data: Any, source: Path) -> ModelCard:
    """Validate a card's contents; `source` is only named in the error message."""
    if not isinstance(data, dict):
        raise ModelCardError(f"model card {source} must hold a mapping (name, version, task, input, output, ...)")
    try:
        return ModelCard.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(_describe(error) for error in exc.errors())
        raise ModelCardError(f"invalid model card {source}: {details}") from None


def load_card(model_path: Path) -> ModelCard:
    """Find, read and validate the card of `model_path`."""
    path = card_path(model_path)
    return parse_card(_read(path), path)
