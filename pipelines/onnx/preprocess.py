"""Decoded image → model input tensor, and the geometry to map model outputs back.

Coordinate convention (used by `Transform`, `pipelines.onnx.detection` and `pipelines.onnx.heatmap`):
continuous image coordinates, x to the right and y down, with (0, 0) the top-left CORNER of the
top-left pixel. An image of width W spans [0, W]; the centre of the pixel in column j is x = j + 0.5.
This is the convention of Pillow's and OpenCV's resize and of YOLO's boxes, and it makes the resize a
plain affine map (x_model = x * scale + pad) with no half-pixel terms. Distances and angles do not
depend on it; a caller who wants pixel indices subtracts 0.5.

Hot path: one resize of the integer image (cheaper than resizing floats, and Pillow's integer resize
is antialiased), then a few in-place passes over the small output; the full-size image is never
converted to float.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from pipelines.image import DecodedImage
from pipelines.onnx.card import InputSpec

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Transform:
    """Original image → model input: x_model = x * scale_x + pad_x, likewise for y.

    `scale_x` and `scale_y` are the exact ratios of the resized to the original size, so they differ
    slightly under letterbox once the resized size is rounded to whole pixels.
    """

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    width: int  # of the original image
    height: int

    def to_original(self, x: float, y: float) -> tuple[float, float]:
        """A model-input point in original-image coordinates (not clipped)."""
        return (x - self.pad_x) / self.scale_x, (y - self.pad_y) / self.scale_y

    def to_model(self, x: float, y: float) -> tuple[float, float]:
        """An original-image point in model-input coordinates."""
        return x * self.scale_x + self.pad_x, y * self.scale_y + self.pad_y

    def points_to_original(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(N, 2) x, y model-input points → original coordinates (not clipped)."""
        xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return (xy - (self.pad_x, self.pad_y)) / (self.scale_x, self.scale_y)

    def boxes_to_original(self, boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(N, 4) x1, y1, x2, y2 model-input boxes → original coordinates (not clipped)."""
        xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        offset = (self.pad_x, self.pad_y, self.pad_x, self.pad_y)
        return (xyxy - offset) / (self.scale_x, self.scale_y, self.scale_x, self.scale_y)

    def clip_boxes(self, boxes: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Original-coordinate boxes limited to the image, [0, width] × [0, height]."""
        upper = (self.width, self.height, self.width, self.height)
        return np.clip(boxes, 0.0, np.asarray(upper, dtype=np.float64))

    def clip_points(self, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Original-coordinate points limited to the image."""
        return np.clip(points, 0.0, np.asarray((self.width, self.height), dtype=np.float64))


def plan(width: int, height: int, spec: InputSpec) -> tuple[Transform, tuple[int, int]]:
    """The transform for an image of this size and the (width, height) it is resized to."""
    if width < 1 or height < 1:
        raise ValueError(f"empty image ({width}×{height})")
    if spec.resize == "stretch":
        return Transform(spec.width / width, spec.height / height, 0.0, 0.0, width, height), (spec.width, spec.height)
    ratio = min(spec.width / width, spec.height / height)
    new_w = min(spec.width, max(1, round(width * ratio)))
    new_h = min(spec.height, max(1, round(height * ratio)))
    # Whole-pixel padding keeps the resized image on the input's pixel grid; an odd remainder
    # goes to the right/bottom.
    pad_x, pad_y = (spec.width - new_w) // 2, (spec.height - new_h) // 2
    return Transform(new_w / width, new_h / height, float(pad_x), float(pad_y), width, height), (new_w, new_h)


def _resize(pixels: npt.NDArray[np.uint8] | npt.NDArray[np.uint16], size: tuple[int, int]) -> npt.NDArray[np.generic]:
    if pixels.shape[::-1] == size:
        return pixels
    # uint8 → mode L, uint16 → mode I;16: both resized as integers, no float copy of the full image.
    # (Native byte order: Pillow's big-endian 16-bit mode is another code path; normally no copy.)
    native = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("="))
    resized = Image.fromarray(native).resize(size, Image.Resampling.BILINEAR)
    return np.asarray(resized)


def _fill_border(plane: FloatArray, inside: tuple[slice, slice], value: np.float32) -> None:
    """Set everything of `plane` outside `inside` (the letterbox padding) to `value`."""
    rows, cols = inside
    plane[: rows.start] = value
    plane[rows.stop :] = value
    plane[rows, : cols.start] = value
    plane[rows, cols.stop :] = value


def prepare(image: DecodedImage, spec: InputSpec) -> tuple[FloatArray, Transform]:
    """The (1, channels, height, width) float32 input for `image`, and the transform it went through.

    Values: pixels / (2**bits_stored - 1), clipped to [0, 1] (a mislabelled bit depth must not push
    the model outside its training range), then (value - mean) / std per channel. Padding is
    `pad_value` in the same [0, 1] units, normalised the same way. Three channels repeat the gray.
    """
    pixels = image.pixels
    if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected a 2-D uint8 or uint16 image, got {pixels.dtype} {pixels.shape}")
    bits = image.bits_stored
    if not 1 <= bits <= pixels.dtype.itemsize * 8:
        raise ValueError(f"bits_stored {bits} does not fit {pixels.dtype}")
    transform, (new_w, new_h) = plan(image.width, image.height, spec)
    resized = _resize(pixels, (new_w, new_h))

    batch = np.empty((1, spec.channels, spec.height, spec.width), dtype=np.float32)
    top, left = int(transform.pad_y), int(transform.pad_x)
    inside = (slice(top, top + new_h), slice(left, left + new_w))
    gray = batch[0, 0][inside]
    np.multiply(resized, np.float32(1.0 / (2**bits - 1)), out=gray, dtype=np.float32)
    np.minimum(gray, np.float32(1.0), out=gray)
    # Last channel first: every channel is computed from channel 0's unnormalised values.
    for channel in reversed(range(spec.channels)):
        mean, std = spec.channel_mean(channel), spec.channel_std(channel)
        plane = batch[0, channel]
        _fill_border(plane, inside, np.float32((spec.pad_value - mean) / std))
        target = plane[inside]
        if channel:
            np.subtract(gray, np.float32(mean), out=target)
        elif mean:
            target -= np.float32(mean)
        if std != 1.0:
            target *= np.float32(1.0 / std)
    return batch, transform
