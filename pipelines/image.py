"""The one image type every pipeline receives: decoded grayscale pixels plus what is known of their scale.

Decoding (`pipelines.decode`) turns JPEG/PNG/BMP/DICOM bytes into this, in the worker, so a model
pipeline never deals with file formats, LUTs or photometric interpretation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt


class SpacingSource(StrEnum):
    """Where a pixel spacing came from (DOMAIN.md, DICOM), reported beside every mm value."""

    CALIBRATED = "calibrated"  # PixelSpacing, calibration type FIDUCIAL
    MAGNIFICATION_CORRECTED = "magnification-corrected"  # GEOMETRY, or imager spacing / magnification factor
    DETECTOR = "detector"  # ImagerPixelSpacing alone: at the detector plane
    UNKNOWN = "unknown"  # PixelSpacing without a calibration type, or given by configuration


@dataclass(frozen=True)
class PixelSpacing:
    """Millimetres per pixel; DICOM order is row (y) then column (x)."""

    row_mm: float
    col_mm: float
    source: SpacingSource

    def distance_mm(self, dx_px: float, dy_px: float) -> float:
        return math.hypot(dx_px * self.col_mm, dy_px * self.row_mm)

    def as_json(self) -> dict[str, float | str]:
        return {"rowMm": self.row_mm, "colMm": self.col_mm, "source": self.source.value}


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """Grayscale pixels, shape (height, width), dtype uint8 or uint16, display-ready (white = dense).

    `bits_stored` is the meaningful depth of the values (e.g. 12 for 12-bit DICOM in uint16), so
    normalisation can scale by the real range rather than by the dtype's.
    """

    pixels: npt.NDArray[np.uint8] | npt.NDArray[np.uint16]
    source_format: str  # "jpeg", "png", "bmp" or "dicom"
    spacing: PixelSpacing | None
    bits_stored: int
    size_bytes: int  # of the encoded file

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    def describe(self) -> dict[str, object]:
        """The `image` block of a result."""
        return {
            "format": self.source_format,
            "width": self.width,
            "height": self.height,
            "bitsStored": self.bits_stored,
            "sizeBytes": self.size_bytes,
            "pixelSpacing": None if self.spacing is None else self.spacing.as_json(),
        }
