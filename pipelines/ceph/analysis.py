"""The eight ISBI 2015 cephalometric measurements from landmark points, classified against a norm set.

Formulas, sign rules and thresholds are DOMAIN.md's table; conventions: image coordinates (x right,
y down), `v(P->Q) = Q - P`, `angle(u, v) = acos(u.v / |u||v|)` in [0, 180] degrees,
`cross(u, v) = u.x*v.y - u.y*v.x`.

Decisions, beyond the table:
- Facing. The signed terms (ODI, APDI, MW) assume the patient faces +x. The facing is read from
  Sella -> Nasion (left when N.x < S.x); when S or N is missing or level, from PNS -> ANS, then
  Porion -> Orbitale; with none of them, right (the ISBI convention). A left-facing image is mirrored
  (x -> -x) before measuring, which flips every cross product; unsigned angles and lengths do not
  change, so a left-facing image measures exactly as its mirror image.
- Coordinates are used as given (sub-pixel floats); the original ISBI code truncated them to integers.
- Missing landmarks make only the measurements that need them None; so does degenerate geometry
  (coincident points, a zero-length vector), never an exception. Non-finite points count as missing.
- Rounding: degrees and mm to 2 decimals, the FHI ratio to 3 (one digit finer than its thresholds,
  as for the angles). ANB is the difference of the rounded SNA and SNB, so the reported three agree.
  Classes are taken on the rounded value, so a reported 79.40 is type 1 whatever the float noise.
- Boundaries count as type 1 (normal), as in the original ISBI code; MW classes: see `norms`.
- MW (|UI - LI| in mm, negative if UI.x < LI.x after mirroring) needs a pixel spacing and is None
  without one; its entry carries `spacingSource`. FHI (|Go - S| / |Me - N|) is dimensionless but is
  taken from mm lengths when a spacing is known, since with anisotropic pixels a pixel ratio differs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from pipelines.ceph import landmarks as lm
from pipelines.ceph.norms import ISBI2015, Classification, Norm, NormSet
from pipelines.image import PixelSpacing

Point = tuple[float, float]
Vector = tuple[float, float]
Unit = Literal["deg", "mm", "ratio"]
Facing = Literal["right", "left"]

# Result order and units, as in the ISBI table.
MEASUREMENTS: Final[tuple[tuple[str, Unit], ...]] = (
    ("SNA", "deg"),
    ("SNB", "deg"),
    ("ANB", "deg"),
    ("ODI", "deg"),
    ("APDI", "deg"),
    ("FHI", "ratio"),
    ("SN_GoGn", "deg"),
    ("MW", "mm"),
)
_DECIMALS: Final[Mapping[Unit, int]] = {"deg": 2, "mm": 2, "ratio": 3}
_MIN_LENGTH: Final = 1e-6  # px (or mm): shorter vectors have no direction worth measuring

# Anterior-posterior pairs from which the facing is read, most reliable first.
_FACING_PAIRS: Final = (
    (lm.SELLA, lm.NASION),
    (lm.POSTERIOR_NASAL_SPINE, lm.ANTERIOR_NASAL_SPINE),
    (lm.PORION, lm.ORBITALE),
)


@dataclass(frozen=True)
class Measurement:
    name: str
    value: float | None
    unit: Unit
    classification: Classification | None
    norm: Norm | None
    norm_set: str
    spacing_source: str | None = None  # for mm values: where the pixel spacing came from

    def as_json(self) -> dict[str, object]:
        entry: dict[str, object] = {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "classification": None if self.classification is None else self.classification.as_json(),
            "norm": None if self.norm is None else {"set": self.norm_set, "min": self.norm.min, "max": self.norm.max},
        }
        if self.unit == "mm":
            entry["spacingSource"] = self.spacing_source
        return entry


@dataclass(frozen=True)
class CephAnalysis:
    facing: Facing
    results: tuple[Measurement, ...]  # in MEASUREMENTS order

    @property
    def measurements(self) -> dict[str, float | None]:
        """The seed's flat `measurements` object."""
        return {m.name: m.value for m in self.results}

    @property
    def analysis(self) -> list[dict[str, object]]:
        return [m.as_json() for m in self.results]

    def as_json(self) -> dict[str, object]:
        return {"measurements": self.measurements, "analysis": self.analysis, "facing": self.facing}


def _vec(p: Point | None, q: Point | None) -> Vector | None:
    return None if p is None or q is None else (q[0] - p[0], q[1] - p[1])


def _angle_cross(u: Vector | None, v: Vector | None) -> tuple[float, float] | None:
    """angle(u, v) in degrees and cross(u, v); None when a vector is missing or has no length."""
    if u is None or v is None:
        return None
    nu, nv = math.hypot(*u), math.hypot(*v)
    if not (nu > _MIN_LENGTH and nv > _MIN_LENGTH):
        return None
    cosine = (u[0] * v[0] + u[1] * v[1]) / (nu * nv)
    # Rounding can push |cosine| a hair past 1 for (anti)parallel vectors; acos would raise.
    angle = math.degrees(math.acos(max(-1.0, min(1.0, cosine))))
    return angle, u[0] * v[1] - u[1] * v[0]


def _angle(u: Vector | None, v: Vector | None) -> float | None:
    ac = _angle_cross(u, v)
    return None if ac is None else ac[0]


def _facing(points: Mapping[str, Point]) -> Facing:
    for posterior, anterior in _FACING_PAIRS:
        p, a = points.get(posterior.name), points.get(anterior.name)
        if p is not None and a is not None and a[0] != p[0]:
            return "left" if a[0] < p[0] else "right"
    return "right"


class _Geometry:
    """The measurements in the right-facing frame; each returns None when it cannot be computed."""

    def __init__(self, points: Mapping[str, Point], spacing: PixelSpacing | None) -> None:
        self._points = points
        self._spacing = spacing

    def _p(self, landmark: lm.Landmark) -> Point | None:
        return self._points.get(landmark.name)

    def _length(self, p: Point | None, q: Point | None) -> float | None:
        d = _vec(p, q)
        if d is None:
            return None
        return math.hypot(*d) if self._spacing is None else self._spacing.distance_mm(*d)

    def _sn_angle(self, point: lm.Landmark) -> float | None:
        n = self._p(lm.NASION)
        return _angle(_vec(n, self._p(lm.SELLA)), _vec(n, self._p(point)))

    def sna(self) -> float | None:
        return self._sn_angle(lm.SUBSPINALE)

    def snb(self) -> float | None:
        return self._sn_angle(lm.SUPRAMENTALE)

    def _palatal_term(self) -> float | None:
        # s * angle(Or - Po, ANS - PNS), s = -1 if the cross product is negative (ODI and APDI alike).
        ac = _angle_cross(
            _vec(self._p(lm.PORION), self._p(lm.ORBITALE)),
            _vec(self._p(lm.POSTERIOR_NASAL_SPINE), self._p(lm.ANTERIOR_NASAL_SPINE)),
        )
        return None if ac is None else (-ac[0] if ac[1] < 0 else ac[0])

    def odi(self) -> float | None:
        # angle(Go - Me, A - B) + palatal term
        ab_mp = _angle(
            _vec(self._p(lm.MENTON), self._p(lm.GONION)), _vec(self._p(lm.SUPRAMENTALE), self._p(lm.SUBSPINALE))
        )
        palatal = self._palatal_term()
        return None if ab_mp is None or palatal is None else ab_mp + palatal

    def apdi(self) -> float | None:
        # angle(Po - Or, Pog - N) + s2 * angle(Pog - N, B - A) + palatal term, s2 = -1 if cross > 0
        n_pog = _vec(self._p(lm.NASION), self._p(lm.POGONION))
        facial = _angle(_vec(self._p(lm.ORBITALE), self._p(lm.PORION)), n_pog)
        ab = _angle_cross(n_pog, _vec(self._p(lm.SUBSPINALE), self._p(lm.SUPRAMENTALE)))
        palatal = self._palatal_term()
        if facial is None or ab is None or palatal is None:
            return None
        return facial + (-ab[0] if ab[1] > 0 else ab[0]) + palatal

    def fhi(self) -> float | None:
        posterior = self._length(self._p(lm.SELLA), self._p(lm.GONION))
        anterior = self._length(self._p(lm.NASION), self._p(lm.MENTON))
        if posterior is None or anterior is None or not anterior > _MIN_LENGTH:
            return None
        return posterior / anterior

    def sn_gogn(self) -> float | None:
        # angle(N - S, Gn - Go)
        return _angle(_vec(self._p(lm.SELLA), self._p(lm.NASION)), _vec(self._p(lm.GONION), self._p(lm.GNATHION)))

    def mw(self) -> float | None:
        li, ui = self._p(lm.LOWER_INCISAL_INCISION), self._p(lm.UPPER_INCISAL_INCISION)
        if self._spacing is None or li is None or ui is None:
            return None
        distance = self._spacing.distance_mm(ui[0] - li[0], ui[1] - li[1])
        return -distance if ui[0] < li[0] else distance


def _rounded(value: float | None, unit: Unit) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, _DECIMALS[unit]) + 0.0  # + 0.0 turns -0.0 into 0.0


def analyze(points: Mapping[str, Point], spacing: PixelSpacing | None, norms: NormSet = ISBI2015) -> CephAnalysis:
    """Measure and classify; `points` are original-image pixels keyed by canonical landmark name."""
    usable = {name: p for name, p in points.items() if math.isfinite(p[0]) and math.isfinite(p[1])}
    facing = _facing(usable)
    if facing == "left":
        usable = {name: (-x, y) for name, (x, y) in usable.items()}
    geometry = _Geometry(usable, spacing)

    sna, snb = _rounded(geometry.sna(), "deg"), _rounded(geometry.snb(), "deg")
    anb = None if sna is None or snb is None else _rounded(sna - snb, "deg")
    computed: dict[str, Callable[[], float | None]] = {
        "ODI": geometry.odi,
        "APDI": geometry.apdi,
        "FHI": geometry.fhi,
        "SN_GoGn": geometry.sn_gogn,
        "MW": geometry.mw,
    }
    values: dict[str, float | None] = {"SNA": sna, "SNB": snb, "ANB": anb}
    for name, unit in MEASUREMENTS:
        if name in computed:
            values[name] = _rounded(computed[name](), unit)

    results = []
    for name, unit in MEASUREMENTS:
        value, norm = values[name], norms.norms.get(name)
        classification = None if value is None or norm is None else norm.classify(value)
        source = None if unit != "mm" or spacing is None else spacing.source.value
        results.append(Measurement(name, value, unit, classification, norm, norms.name, source))
    return CephAnalysis(facing, tuple(results))
