"""Landmark heatmaps → sub-pixel peaks in original-image pixels.

The output is (1, K, h, w): one map per landmark, possibly smaller than the model input (stride =
input size / heatmap size, per axis). Per channel:

1. The arg-max sample is the coarse peak; its value, clipped to [0, 1], is the confidence. The
   value is used as is: a model whose heatmaps are logits needs a sigmoid in the graph (or a
   `min_confidence` chosen in logit terms - the clip then reports 1 for every positive logit).
2. Refinement: a 2-D quadratic is fitted to the 3 × 3 neighbourhood in log space (gradient and
   Hessian by central differences, offset = -H⁻¹·g: the Taylor step of DARK, Zhang et al. 2020,
   without its blur). A Gaussian is a quadratic in log space, so a Gaussian peak - even an
   anisotropic, rotated one - comes back exactly. At a border the 3 × 3 window is moved inward
   by one sample and the same fit extrapolates, so border peaks need no special treatment.
   Where a sample in the window is ≤ 0 the fit uses the raw values; where the Hessian is not
   that of a maximum it falls back to a per-axis step, or none. The result stays within one sample
   of the arg-max and inside the map.
3. Heatmap sample (i, j) covers model-input pixels [j·sx, (j+1)·sx) × [i·sy, (i+1)·sy): its centre
   is at ((j + 0.5)·sx, (i + 0.5)·sy) in the continuous coordinates of `pipelines.onnx.preprocess`.
   A model trained with the other convention (sample j at input pixel index j·s) reads
   (s - 1)/2 input pixels off; that is a property of the model, to be documented on its card.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pipelines.onnx.preprocess import Transform

_TINY = 1e-12


@dataclass(frozen=True)
class Peak:
    """A landmark in original-image coordinates, with the heatmap value at its peak."""

    x: float
    y: float
    confidence: float


def _refine(
    maps: npt.NDArray[np.float32], rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Sub-sample peak positions (in sample-index units) for the arg-max samples of each map."""
    count, height, width = maps.shape
    if height < 3 or width < 3:  # no 3 × 3 window: keep the arg-max samples
        return rows.astype(np.float64), cols.astype(np.float64)
    centre_r, centre_c = np.clip(rows, 1, height - 2), np.clip(cols, 1, width - 2)
    steps = np.arange(-1, 2)
    window = maps[
        np.arange(count)[:, None, None],
        (centre_r[:, None] + steps)[:, :, None],
        (centre_c[:, None] + steps)[:, None, :],
    ].astype(np.float64)  # (K, 3, 3), [k, dy + 1, dx + 1]
    positive = np.all(window > _TINY, axis=(1, 2))
    z = np.where(positive[:, None, None], np.log(np.where(window > _TINY, window, 1.0)), window)

    gx = (z[:, 1, 2] - z[:, 1, 0]) / 2
    gy = (z[:, 2, 1] - z[:, 0, 1]) / 2
    dxx = z[:, 1, 2] - 2 * z[:, 1, 1] + z[:, 1, 0]
    dyy = z[:, 2, 1] - 2 * z[:, 1, 1] + z[:, 0, 1]
    dxy = (z[:, 2, 2] - z[:, 2, 0] - z[:, 0, 2] + z[:, 0, 0]) / 4
    det = dxx * dyy - dxy * dxy
    maximum = (dxx < 0) & (det > _TINY)  # negative definite Hessian
    safe_det = np.where(maximum, det, 1.0)
    # Per-axis parabola where the 2-D fit is not a maximum (a ridge, a plateau).
    axis_x = np.where(dxx < 0, -gx / np.where(dxx < 0, dxx, 1.0), 0.0)
    axis_y = np.where(dyy < 0, -gy / np.where(dyy < 0, dyy, 1.0), 0.0)
    step_x = np.where(maximum, (dxy * gy - dyy * gx) / safe_det, axis_x)
    step_y = np.where(maximum, (dxy * gx - dxx * gy) / safe_det, axis_y)

    # Within one sample of the arg-max, and not beyond the map's outer edge (index -0.5 .. size - 0.5).
    x = np.clip(centre_c + step_x, np.maximum(cols - 1, -0.5), np.minimum(cols + 1, width - 0.5))
    y = np.clip(centre_r + step_y, np.maximum(rows - 1, -0.5), np.minimum(rows + 1, height - 0.5))
    return y.astype(np.float64), x.astype(np.float64)


def decode_heatmaps(
    output: npt.ArrayLike, transform: Transform, input_size: tuple[int, int], min_confidence: float
) -> list[Peak | None]:
    """One entry per channel: the peak in original pixels, or None when its value is below
    `min_confidence` (or not finite). `input_size` is the model input's (width, height)."""
    maps = np.asarray(output, dtype=np.float32)
    if maps.ndim != 4 or maps.shape[0] != 1 or maps.shape[2] == 0 or maps.shape[3] == 0:
        raise ValueError(f"heatmap output must have shape (1, K, h, w); got {maps.shape}")
    maps = maps[0]
    count, height, width = maps.shape
    flat = np.argmax(maps.reshape(count, -1), axis=1)
    rows, cols = np.divmod(flat, width)
    values = maps.reshape(count, -1)[np.arange(count), flat].astype(np.float64)

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # non-finite maps end as None
        y, x = _refine(maps, rows, cols)
    stride_x, stride_y = input_size[0] / width, input_size[1] / height
    model_points = np.stack(((x + 0.5) * stride_x, (y + 0.5) * stride_y), axis=1)
    # A peak in the letterbox padding is clipped onto the image's edge.
    points = transform.clip_points(transform.points_to_original(model_points))
    found = np.isfinite(values) & (values >= min_confidence) & np.all(np.isfinite(points), axis=1)
    confidence = np.clip(values, 0.0, 1.0)
    return [
        Peak(float(px), float(py), float(c)) if ok else None
        for (px, py), c, ok in zip(points.tolist(), confidence.tolist(), found.tolist(), strict=True)
    ]
