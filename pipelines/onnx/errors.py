"""Why an ONNX model cannot be used; raised by `load()`, so a bad model makes the worker unhealthy.

    OnnxModelError
    ├── ModelCardError        the card is missing, ambiguous, unreadable or invalid
    ├── ProviderError         the requested device has no execution provider
    └── ModelMismatchError    the graph does not fit its card (input size, class or landmark count)

Each message names the file concerned, because the person reading it is the one who deployed a model.
"""

from __future__ import annotations


class OnnxModelError(Exception):
    """An ONNX model or its card cannot be loaded or does not agree with itself."""


class ModelCardError(OnnxModelError):
    """The model card beside the `.onnx` file is missing, ambiguous, unreadable or invalid."""


class ProviderError(OnnxModelError):
    """The configured device cannot be used by this onnxruntime build."""


class ModelMismatchError(OnnxModelError):
    """The ONNX graph's inputs or outputs contradict its model card."""
