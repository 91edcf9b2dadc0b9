"""FDI (ISO 3950) tooth numbers: validity, parsing of model labels, and the Universal numbering.

FDI = 10 * quadrant + position. Quadrants 1 upper right, 2 upper left, 3 lower left, 4 lower right
(the patient's sides), positions 1-8 from the midline; primary teeth use quadrants 5-8, positions 1-5.
Universal numbering (US): permanent teeth 1-32 from the upper right third molar round to the lower
right one, primary teeth A-T in the same order.
"""

from __future__ import annotations

import re
from typing import Final

# "11", "tooth_11", "Tooth 11", "FDI 11", "fdi-11". No "#": "#11" is Universal notation, a different tooth.
_LABEL: Final = re.compile(r"(?:(?:tooth|fdi)[ _-]*)?(\d{2})", re.IGNORECASE)


def is_valid_fdi(n: int) -> bool:
    # bool is an int subclass; True is no tooth.
    if isinstance(n, bool) or not isinstance(n, int):
        return False
    q, p = divmod(n, 10)
    return (1 <= q <= 4 and 1 <= p <= 8) or (5 <= q <= 8 and 1 <= p <= 5)


def parse_fdi(label: str | int) -> int | None:
    """The FDI number a model's class label names, None when it names no valid tooth."""
    if isinstance(label, int):
        return label if is_valid_fdi(label) else None
    match = _LABEL.fullmatch(label.strip())
    if match is None:
        return None
    n = int(match.group(1))
    return n if is_valid_fdi(n) else None


def fdi_to_universal(n: int) -> str:
    """Universal number ("1".."32") or letter ("A".."T"); ValueError when `n` is no FDI number."""
    if not is_valid_fdi(n):
        raise ValueError(f"not an FDI tooth number: {n!r}")
    q, p = divmod(n, 10)
    if q == 1:
        return str(9 - p)
    if q == 2:
        return str(8 + p)
    if q == 3:
        return str(25 - p)
    if q == 4:
        return str(24 + p)
    # Primary: the same round trip, five teeth per quadrant, lettered.
    first = {5: "A", 6: "F", 7: "K", 8: "P"}[q]
    offset = 5 - p if q in (5, 7) else p - 1
    return chr(ord(first) + offset)
