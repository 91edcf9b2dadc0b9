"""Normal ranges and class labels for the cephalometric measurements, as named data.

Thresholds are population-specific, so they live here rather than in the measurement code: a
`NormSet` maps a measurement key to a `Norm`, and `analysis.analyze` takes any set. A set that lacks a
measurement leaves it unclassified; adding a population-specific set is adding an instance.

Classification rule (`Norm.classify`): a value inside the closed range [min, max] is type 1, so the
boundary values themselves are normal, as in the original ISBI 2015 evaluation code; outside it the
first `Band` that contains the value (open interval, `above < value < below`) gives the type.

MW (modified Wits) decision. The ISBI table has 2-4.5 mm normal (1), "= 0" edge to edge (2), < 0
anterior crossbite (3), > 4.5 large overjet (4), and the original code puts 0 < MW < 2 into type 3,
which reads as a bug (a reduced positive overjet is not a crossbite). Here:
  |MW| < 0.05 mm  -> type 2 "edge to edge"  (the tolerance stands for "= 0" with sub-pixel landmarks;
                                              about half a pixel at ISBI's 0.1 mm/px)
  MW <= -0.05     -> type 3 "anterior crossbite"
  0.05 <= MW < 2  -> type 2 "reduced overjet" (same type as edge to edge, the nearer of the table's
                                              classes; the label says which)
  2 <= MW <= 4.5  -> type 1 "normal";  MW > 4.5 -> type 4 "large overjet"
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Classification:
    type: int  # the ISBI table's column, 1 (normal) to 4
    label: str

    def as_json(self) -> dict[str, int | str]:
        return {"type": self.type, "label": self.label}


@dataclass(frozen=True)
class Band:
    """Values strictly between `above` and `below` get this class."""

    type: int
    label: str
    above: float = -math.inf
    below: float = math.inf

    def contains(self, value: float) -> bool:
        return self.above < value < self.below


@dataclass(frozen=True)
class Norm:
    min: float
    max: float
    outside: tuple[Band, ...]  # tried in order for values outside [min, max]; first match wins
    normal: str = "normal"  # label of type 1

    def classify(self, value: float) -> Classification | None:
        """The class of `value`; None for NaN or a value no band covers."""
        if self.min <= value <= self.max:
            return Classification(1, self.normal)
        for band in self.outside:
            if band.contains(value):
                return Classification(band.type, band.label)
        return None


@dataclass(frozen=True)
class NormSet:
    name: str
    norms: Mapping[str, Norm]  # measurement key ("SNA", "SN_GoGn", ...) -> its norm


def _two_sided(low: float, high: float, above_label: str, below_label: str, normal: str = "normal") -> Norm:
    """The ISBI shape: type 2 on one side of the normal range, type 3 on the other."""
    return Norm(low, high, (Band(2, above_label, above=high), Band(3, below_label, below=low)), normal)


def _two_sided_low2(low: float, high: float, below_label: str, above_label: str) -> Norm:
    """As `_two_sided` where the table puts type 2 below the range (SNB, APDI)."""
    return Norm(low, high, (Band(2, below_label, below=low), Band(3, above_label, above=high)))


MW_EDGE_TOLERANCE_MM: Final = 0.05

# The ISBI 2015 challenge table (DOMAIN.md). ISBI calls SN-GoGn "FMA", but it is the angle of SN to
# Go-Gn (Steiner's SN-GoGn), not Tweed's FH-mandibular-plane FMA, hence the key SN_GoGn.
ISBI2015: Final = NormSet(
    "ISBI2015",
    {
        "SNA": _two_sided(79.4, 83.2, "prognathic maxilla", "retrognathic maxilla"),
        "SNB": _two_sided_low2(74.6, 78.7, "retrognathic mandible", "prognathic mandible"),
        "ANB": _two_sided(3.2, 5.7, "Class II", "Class III", normal="Class I"),
        "ODI": _two_sided(68.4, 80.5, "deep bite tendency", "open bite tendency"),
        "APDI": _two_sided_low2(77.6, 85.2, "Class II tendency", "Class III tendency"),
        "FHI": _two_sided(0.65, 0.75, "short face", "long face"),
        "SN_GoGn": _two_sided(26.8, 31.4, "high angle", "low angle"),
        "MW": Norm(
            2.0,
            4.5,
            (
                Band(4, "large overjet", above=4.5),
                Band(2, "edge to edge", above=-MW_EDGE_TOLERANCE_MM, below=MW_EDGE_TOLERANCE_MM),
                Band(3, "anterior crossbite", below=0.0),  # after edge to edge: MW <= -0.05
                Band(2, "reduced overjet", above=0.0, below=2.0),  # after edge to edge: 0.05 <= MW < 2
            ),
        ),
    },
)
