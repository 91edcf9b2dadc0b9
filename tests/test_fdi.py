"""FDI tooth numbers: the full valid table, label parsing and the Universal numbering (DOMAIN.md)."""

from __future__ import annotations

import pytest

from pipelines.pano.fdi import fdi_to_universal, is_valid_fdi, parse_fdi

# Written out rather than generated, so the table is checked against something independent.
PERMANENT = [11, 12, 13, 14, 15, 16, 17, 18, 21, 22, 23, 24, 25, 26, 27, 28]
PERMANENT += [31, 32, 33, 34, 35, 36, 37, 38, 41, 42, 43, 44, 45, 46, 47, 48]
PRIMARY = [51, 52, 53, 54, 55, 61, 62, 63, 64, 65, 71, 72, 73, 74, 75, 81, 82, 83, 84, 85]
INVALID = [0, -11, 1, 9, 10, 19, 20, 29, 30, 39, 40, 49, 50, 56, 59, 60, 66, 76, 86, 89, 90, 91, 99, 100, 111]


def test_exactly_the_52_teeth_are_valid() -> None:
    assert [n for n in range(-20, 120) if is_valid_fdi(n)] == PERMANENT + PRIMARY
    assert len(PERMANENT) + len(PRIMARY) == 52


@pytest.mark.parametrize("n", PERMANENT + PRIMARY)
def test_valid(n: int) -> None:
    assert is_valid_fdi(n)
    assert parse_fdi(n) == n


@pytest.mark.parametrize("n", INVALID)
def test_invalid(n: int) -> None:
    assert not is_valid_fdi(n)
    assert parse_fdi(n) is None
    assert parse_fdi(str(n)) is None
    with pytest.raises(ValueError, match="not an FDI tooth number"):
        fdi_to_universal(n)


def test_bool_is_not_a_tooth() -> None:
    assert not is_valid_fdi(True)


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        (11, 11),
        ("11", 11),
        (" 48 ", 48),
        ("tooth_11", 11),
        ("Tooth 21", 21),
        ("TOOTH-85", 85),
        ("FDI 11", 11),
        ("fdi_55", 55),
        ("tooth11", 11),
    ],
)
def test_parse_accepts_model_labels(label: str | int, expected: int) -> None:
    assert parse_fdi(label) == expected


@pytest.mark.parametrize(
    "label",
    ["", "tooth", "tooth_19", "FDI 90", "#11", "-11", "1", "111", "tooth 1 1", "caries", "11a", "molar_11"],
)
def test_parse_rejects_other_labels(label: str) -> None:
    assert parse_fdi(label) is None


@pytest.mark.parametrize(
    ("fdi", "universal"),
    [
        (11, "8"),
        (18, "1"),
        (21, "9"),
        (28, "16"),
        (38, "17"),
        (31, "24"),
        (41, "25"),
        (48, "32"),
        (55, "A"),
        (51, "E"),
        (61, "F"),
        (65, "J"),
        (75, "K"),
        (71, "O"),
        (81, "P"),
        (85, "T"),
    ],
)
def test_universal_spot_checks(fdi: int, universal: str) -> None:
    assert fdi_to_universal(fdi) == universal


def test_universal_is_a_bijection_onto_1_to_32_and_a_to_t() -> None:
    permanent = [fdi_to_universal(n) for n in PERMANENT]
    primary = [fdi_to_universal(n) for n in PRIMARY]
    assert sorted(permanent, key=int) == [str(i) for i in range(1, 33)]
    assert sorted(primary) == [chr(c) for c in range(ord("A"), ord("T") + 1)]


def test_universal_runs_round_the_arches() -> None:
    # Universal counts from the upper right third molar to the upper left, then lower left to lower right.
    order = [18, 17, 16, 15, 14, 13, 12, 11, 21, 22, 23, 24, 25, 26, 27, 28]
    order += [38, 37, 36, 35, 34, 33, 32, 31, 41, 42, 43, 44, 45, 46, 47, 48]
    assert [fdi_to_universal(n) for n in order] == [str(i) for i in range(1, 33)]
    primary_order = [55, 54, 53, 52, 51, 61, 62, 63, 64, 65, 75, 74, 73, 72, 71, 81, 82, 83, 84, 85]
    assert "".join(fdi_to_universal(n) for n in primary_order) == "ABCDEFGHIJKLMNOPQRST"
