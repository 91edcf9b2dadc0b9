"""The 19 ISBI 2015 cephalometric landmarks and the mapping from a model card's names onto them.

Results name a landmark by its full name (the seed's "Sella", "Nasion"); measurements look points up by
that name. A model card may spell a landmark differently ("S", "A point", "soft-tissue pogonion") or
carry more landmarks than these 19 (CL-Detection 2023 has 38, its first 19 being these):
`resolve_landmark` maps the known spellings and returns None for the rest, which the caller keeps
under the model's own name but which no measurement uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Landmark:
    number: int  # 1-based position in the ISBI 2015 order (also CL-Detection 2023's first 19)
    name: str  # canonical result name
    abbreviation: str


SELLA: Final = Landmark(1, "Sella", "S")
NASION: Final = Landmark(2, "Nasion", "N")
ORBITALE: Final = Landmark(3, "Orbitale", "Or")
PORION: Final = Landmark(4, "Porion", "Po")
SUBSPINALE: Final = Landmark(5, "Subspinale", "A")  # A point
SUPRAMENTALE: Final = Landmark(6, "Supramentale", "B")  # B point
POGONION: Final = Landmark(7, "Pogonion", "Pog")
MENTON: Final = Landmark(8, "Menton", "Me")
GNATHION: Final = Landmark(9, "Gnathion", "Gn")
GONION: Final = Landmark(10, "Gonion", "Go")
LOWER_INCISAL_INCISION: Final = Landmark(11, "Lower incisal incision", "LI")
UPPER_INCISAL_INCISION: Final = Landmark(12, "Upper incisal incision", "UI")
UPPER_LIP: Final = Landmark(13, "Upper lip", "UL")
LOWER_LIP: Final = Landmark(14, "Lower lip", "LL")
SUBNASALE: Final = Landmark(15, "Subnasale", "Sn")
SOFT_TISSUE_POGONION: Final = Landmark(16, "Soft tissue pogonion", "Pog'")
POSTERIOR_NASAL_SPINE: Final = Landmark(17, "Posterior nasal spine", "PNS")
ANTERIOR_NASAL_SPINE: Final = Landmark(18, "Anterior nasal spine", "ANS")
ARTICULARE: Final = Landmark(19, "Articulare", "Ar")

LANDMARKS: Final[tuple[Landmark, ...]] = (
    SELLA,
    NASION,
    ORBITALE,
    PORION,
    SUBSPINALE,
    SUPRAMENTALE,
    POGONION,
    MENTON,
    GNATHION,
    GONION,
    LOWER_INCISAL_INCISION,
    UPPER_INCISAL_INCISION,
    UPPER_LIP,
    LOWER_LIP,
    SUBNASALE,
    SOFT_TISSUE_POGONION,
    POSTERIOR_NASAL_SPINE,
    ANTERIOR_NASAL_SPINE,
    ARTICULARE,
)


def _normalise(name: str) -> str:
    # Case, separators and the typographic apostrophe vary between model cards; the plain
    # apostrophe is kept because it is what tells "Pog'" (soft tissue) from "Pog" (bone).
    spaced = name.replace("\u2019", "'").replace("_", " ").replace("-", " ")
    return " ".join(spaced.split()).casefold()


_ALIASES: Final[Mapping[str, Landmark]] = {
    "a point": SUBSPINALE,
    "point a": SUBSPINALE,
    "b point": SUPRAMENTALE,
    "point b": SUPRAMENTALE,
}

# Full names and abbreviations do not collide once case-folded (checked by the tests).
_BY_SPELLING: Final[Mapping[str, Landmark]] = {
    **{_normalise(lm.name): lm for lm in LANDMARKS},
    **{_normalise(lm.abbreviation): lm for lm in LANDMARKS},
    **_ALIASES,
}


def resolve_landmark(name: str) -> Landmark | None:
    """The ISBI landmark a model card's name means (full name, abbreviation or alias), else None."""
    return _BY_SPELLING.get(_normalise(name))
