"""Cephalometric landmarks and the eight ISBI measurements, checked against hand-computed geometry.

The base configuration (right-facing, image coordinates x right, y down) is built so that every angle
is an arctangent of a small ratio:

    S (100, 100)   N (800, 100)          S - N = (-700, 0): SN is horizontal, pointing back
    A (700, 700)   B (600, 900)          A - N = (-100, 600), B - N = (-200, 800)
    Po (100, 300)  Or (700, 300)         Or - Po = (600, 0): FH is horizontal, pointing forward
    PNS (300, 600) ANS (700, 500)        ANS - PNS = (400, -100): palatal plane tilted anterior-up
    Pog (700, 1000)                      Pog - N = (-100, 900)
    Go (200, 800)  Me (650, 1100)        Go - Me = (-450, -300) = 150 * (-3, -2)
    Gn (650, 1070)                       Gn - Go = (450, 270) = 90 * (5, 3)
    LI (700, 650)  UI (724, 657)         UI - LI = (24, 7), length 25 px

    SNA  = atan(600/100) = atan(6) = 80.5377 -> 80.54 (type 1)
    SNB  = atan(800/200) = atan(4) = 75.9638 -> 75.96 (type 1)
    ANB  = 80.54 - 75.96 = 4.58 (type 1, Class I)
    palatal term: angle((1, 0), (4, -1)) = atan(1/4) = 14.0362; cross = 1*(-1) - 0*4 = -1 < 0 -> -14.0362
    ODI  = angle((-3, -2), (1, -2)) - 14.0362; cos = (-3 + 4) / (sqrt 13 * sqrt 5) = 1/sqrt 65, so the
           angle is atan(8) = 82.8750; ODI = 68.8387 -> 68.84 (type 1)
    APDI = angle((-1, 0), (-1, 9)) + s2 * angle((-1, 9), (-1, 2)) - 14.0362
           first: cos = 1/sqrt 82 -> atan(9) = 83.6598
           second: both point down and back, atan(1/2) - atan(1/9) = 26.5651 - 6.3402 = 20.2249;
           cross((-1, 9), (-1, 2)) = -2 + 9 = 7 > 0 -> s2 = -1
           APDI = 83.6598 - 20.2249 - 14.0362 = 49.3987 -> 49.40 (type 2, Class II tendency)
    FHI  = |Go - S| / |Me - N| = |(100, 700)| / |(-150, 1000)| = 707.107 / 1011.187 = 0.6993 -> 0.699
    SN_GoGn = angle((1, 0), (5, 3)) = atan(3/5) = 30.9638 -> 30.96 (type 1)
    MW   = 25 px * 0.1 mm = 2.5 mm, UI.x > LI.x so positive (type 1)
"""

from __future__ import annotations

import math

import pytest

from pipelines.ceph.analysis import MEASUREMENTS, CephAnalysis, Point, analyze
from pipelines.ceph.landmarks import LANDMARKS, resolve_landmark
from pipelines.ceph.norms import ISBI2015, Band, Norm, NormSet
from pipelines.image import PixelSpacing, SpacingSource

TENTH_MM = PixelSpacing(0.1, 0.1, SpacingSource.CALIBRATED)
ROUNDING = 0.0051  # a value rounded to 2 decimals is within 0.005 of the exact one

BASE: dict[str, Point] = {
    "Sella": (100, 100),
    "Nasion": (800, 100),
    "Subspinale": (700, 700),
    "Supramentale": (600, 900),
    "Porion": (100, 300),
    "Orbitale": (700, 300),
    "Posterior nasal spine": (300, 600),
    "Anterior nasal spine": (700, 500),
    "Pogonion": (700, 1000),
    "Gonion": (200, 800),
    "Menton": (650, 1100),
    "Gnathion": (650, 1070),
    "Lower incisal incision": (700, 650),
    "Upper incisal incision": (724, 657),
    "Upper lip": (780, 600),  # used by no measurement
    "Articulare": (150, 500),  # used by no measurement
}

ATAN = {k: math.degrees(math.atan(k)) for k in (6, 4, 8, 9, 1 / 2, 1 / 4, 1 / 9, 3 / 5)}
PALATAL = ATAN[1 / 4]


def with_points(**changes: Point | None) -> dict[str, Point]:
    """BASE with landmarks moved (keyword = name with spaces as underscores) or removed (None)."""
    points = dict(BASE)
    for key, point in changes.items():
        name = key.replace("_", " ")
        if point is None:
            del points[name]
        else:
            points[name] = point
    return points


def mirrored(points: dict[str, Point], width: float = 2000) -> dict[str, Point]:
    return {name: (width - x, y) for name, (x, y) in points.items()}


def entry(result: CephAnalysis, name: str) -> dict[str, object]:
    (found,) = [e for e in result.analysis if e["name"] == name]
    return found


def class_type(result: CephAnalysis, name: str) -> int | None:
    classification = entry(result, name)["classification"]
    if classification is None:
        return None
    assert isinstance(classification, dict)
    value = classification["type"]
    assert isinstance(value, int)
    return value


# --- landmarks -----------------------------------------------------------------------------------


def test_the_19_isbi_landmarks_in_order() -> None:
    assert [(lm.number, lm.abbreviation) for lm in LANDMARKS] == list(
        enumerate(
            ["S", "N", "Or", "Po", "A", "B", "Pog", "Me", "Gn", "Go"]
            + ["LI", "UI", "UL", "LL", "Sn", "Pog'", "PNS", "ANS", "Ar"],
            start=1,
        )
    )
    assert LANDMARKS[0].name == "Sella" and LANDMARKS[4].name == "Subspinale" and LANDMARKS[18].name == "Articulare"


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("Sella", "Sella"),
        ("sella", "Sella"),
        ("S", "Sella"),
        ("s", "Sella"),
        ("NASION", "Nasion"),
        ("A point", "Subspinale"),
        ("a-point", "Subspinale"),
        ("Point B", "Supramentale"),
        ("B", "Supramentale"),
        ("Pog", "Pogonion"),
        ("Pog'", "Soft tissue pogonion"),
        ("Pog\u2019", "Soft tissue pogonion"),
        ("Soft-tissue pogonion", "Soft tissue pogonion"),
        ("soft_tissue_pogonion", "Soft tissue pogonion"),
        ("Upper Incisal Incision", "Upper incisal incision"),
        ("  li ", "Lower incisal incision"),
        ("pns", "Posterior nasal spine"),
        ("Anterior nasal spine", "Anterior nasal spine"),
    ],
)
def test_model_card_names_resolve(spelling: str, expected: str) -> None:
    landmark = resolve_landmark(spelling)
    assert landmark is not None and landmark.name == expected


@pytest.mark.parametrize("spelling", ["", "Upper incisor apex", "U1A", "Pogo", "Sellaa", "20"])
def test_unknown_names_resolve_to_none(spelling: str) -> None:
    assert resolve_landmark(spelling) is None


def test_every_name_and_abbreviation_resolves_to_its_own_landmark() -> None:
    for landmark in LANDMARKS:
        assert resolve_landmark(landmark.name) == landmark
        assert resolve_landmark(landmark.abbreviation) == landmark


# --- the base configuration ----------------------------------------------------------------------


def test_base_configuration_hand_computed() -> None:
    result = analyze(BASE, TENTH_MM)
    m = result.measurements
    assert list(m) == [name for name, _ in MEASUREMENTS]
    assert m["SNA"] == pytest.approx(ATAN[6], abs=ROUNDING)
    assert m["SNB"] == pytest.approx(ATAN[4], abs=ROUNDING)
    assert m["ANB"] == 4.58  # 80.54 - 75.96: the reported three agree
    assert m["ODI"] == pytest.approx(ATAN[8] - PALATAL, abs=ROUNDING)
    assert m["APDI"] == pytest.approx(ATAN[9] - (ATAN[1 / 2] - ATAN[1 / 9]) - PALATAL, abs=ROUNDING)
    assert m["FHI"] == pytest.approx(math.hypot(100, 700) / math.hypot(150, 1000), abs=0.00051)
    assert m["SN_GoGn"] == pytest.approx(ATAN[3 / 5], abs=ROUNDING)
    assert m["MW"] == 2.5
    assert m == {
        "SNA": 80.54,
        "SNB": 75.96,
        "ANB": 4.58,
        "ODI": 68.84,
        "APDI": 49.4,
        "FHI": 0.699,
        "SN_GoGn": 30.96,
        "MW": 2.5,
    }
    assert result.facing == "right"
    assert [class_type(result, name) for name, _ in MEASUREMENTS] == [1, 1, 1, 1, 2, 1, 1, 1]


def test_analysis_entries_are_json_ready() -> None:
    result = analyze(BASE, TENTH_MM)
    assert entry(result, "SNA") == {
        "name": "SNA",
        "value": 80.54,
        "unit": "deg",
        "classification": {"type": 1, "label": "normal"},
        "norm": {"set": "ISBI2015", "min": 79.4, "max": 83.2},
    }
    assert entry(result, "ANB")["classification"] == {"type": 1, "label": "Class I"}
    assert entry(result, "APDI")["classification"] == {"type": 2, "label": "Class II tendency"}
    assert entry(result, "FHI")["unit"] == "ratio"
    assert entry(result, "MW") == {
        "name": "MW",
        "value": 2.5,
        "unit": "mm",
        "classification": {"type": 1, "label": "normal"},
        "norm": {"set": "ISBI2015", "min": 2.0, "max": 4.5},
        "spacingSource": "calibrated",
    }


# --- signs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ans", "palatal"),
    [
        # ANS - PNS = (400, -100): cross((1, 0), (4, -1)) = -1 < 0 -> the term is subtracted
        ((700, 500), -PALATAL),
        # ANS - PNS = (400, 100): cross((1, 0), (4, 1)) = +1 > 0 -> added
        ((700, 700), +PALATAL),
        # ANS - PNS = (400, 0): parallel to FH, cross 0 -> s = +1, angle 0
        ((700, 600), 0.0),
    ],
)
def test_palatal_term_sign_in_odi_and_apdi(ans: Point, palatal: float) -> None:
    m = analyze(with_points(Anterior_nasal_spine=ans), TENTH_MM).measurements
    assert m["ODI"] == pytest.approx(ATAN[8] + palatal, abs=ROUNDING)
    assert m["APDI"] == pytest.approx(ATAN[9] - (ATAN[1 / 2] - ATAN[1 / 9]) + palatal, abs=ROUNDING)


def test_odi_with_palatal_plane_tilted_down_is_deep_bite() -> None:
    # 82.8750 + 14.0362 = 96.91 > 80.5
    result = analyze(with_points(Anterior_nasal_spine=(700, 700)), TENTH_MM)
    assert result.measurements["ODI"] == 96.91
    assert entry(result, "ODI")["classification"] == {"type": 2, "label": "deep bite tendency"}


def test_apdi_ab_term_added_when_cross_is_negative() -> None:
    # B = (800, 900): B - A = (100, 200). cross((-1, 9), (1, 2)) = -2 - 9 = -11 < 0 -> s2 = +1; the two
    # vectors lie either side of the vertical: atan(1/9) + atan(1/2) = 6.3402 + 26.5651 = 32.9053.
    # APDI = 83.6598 + 32.9053 - 14.0362 = 102.5289 -> Class III tendency.
    result = analyze(with_points(Supramentale=(800, 900)), TENTH_MM)
    assert result.measurements["APDI"] == pytest.approx(ATAN[9] + ATAN[1 / 9] + ATAN[1 / 2] - PALATAL, abs=ROUNDING)
    assert result.measurements["APDI"] == 102.53
    assert entry(result, "APDI")["classification"] == {"type": 3, "label": "Class III tendency"}


def test_anb_negative_is_class_iii() -> None:
    # A - N = (-150, 600): SNA = atan(4) = 75.96; B - N = (-100, 600): SNB = atan(6) = 80.54.
    result = analyze(with_points(Subspinale=(650, 700), Supramentale=(700, 700)), TENTH_MM)
    assert result.measurements["ANB"] == -4.58
    assert entry(result, "ANB")["classification"] == {"type": 3, "label": "Class III"}
    assert entry(result, "SNA")["classification"] == {"type": 3, "label": "retrognathic maxilla"}
    assert entry(result, "SNB")["classification"] == {"type": 3, "label": "prognathic mandible"}


# --- class boundaries ----------------------------------------------------------------------------


def point_at_sn_angle(degrees: float, radius: float = 600) -> Point:
    """The point seen from N at `degrees` below N -> S (S - N points to -x in BASE)."""
    n = BASE["Nasion"]
    rad = math.radians(degrees)
    return (n[0] - radius * math.cos(rad), n[1] + radius * math.sin(rad))


@pytest.mark.parametrize(
    ("sna", "expected"),
    [(79.4, 1), (79.41, 1), (79.39, 3), (83.2, 1), (83.19, 1), (83.21, 2), (81.0, 1), (70.0, 3), (90.0, 2)],
)
def test_sna_boundaries_through_analyze(sna: float, expected: int) -> None:
    result = analyze(with_points(Subspinale=point_at_sn_angle(sna)), TENTH_MM)
    assert result.measurements["SNA"] == sna
    assert class_type(result, "SNA") == expected


@pytest.mark.parametrize(
    ("go_y", "fhi", "expected"), [(750, 0.65, 1), (749, 0.649, 3), (850, 0.75, 1), (851, 0.751, 2)]
)
def test_fhi_boundaries_through_analyze(go_y: float, fhi: float, expected: int) -> None:
    # |Go - S| = go_y - 100 (vertical), |Me - N| = 1000 (vertical): FHI = (go_y - 100) / 1000.
    result = analyze(with_points(Gonion=(100, go_y), Menton=(800, 1100)), None)
    assert result.measurements["FHI"] == fhi
    assert class_type(result, "FHI") == expected


SIDES = [  # (measurement, type below the normal range, type above it), as in the ISBI table
    ("SNA", 3, 2),
    ("SNB", 2, 3),
    ("ANB", 3, 2),
    ("ODI", 3, 2),
    ("APDI", 2, 3),
    ("FHI", 3, 2),
    ("SN_GoGn", 3, 2),
]


@pytest.mark.parametrize(("name", "below", "above"), SIDES)
def test_every_isbi_boundary_is_normal_and_just_outside_is_not(name: str, below: int, above: int) -> None:
    norm = ISBI2015.norms[name]
    step = 0.001 if name == "FHI" else 0.01  # one unit of the reported rounding
    expected = {norm.min: 1, norm.max: 1, norm.min - step: below, norm.max + step: above}
    for value, class_type in expected.items():
        classification = norm.classify(value)
        assert classification is not None and classification.type == class_type, value


# --- MW ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ui_minus_li", "mw", "expected"),
    [
        ((20, 0), 2.0, (1, "normal")),
        ((45, 0), 4.5, (1, "normal")),
        ((46, 0), 4.6, (4, "large overjet")),
        ((19, 0), 1.9, (2, "reduced overjet")),
        ((0.5, 0), 0.05, (2, "reduced overjet")),  # tolerance is |MW| < 0.05
        ((0.4, 0), 0.04, (2, "edge to edge")),
        ((0, 0), 0.0, (2, "edge to edge")),
        ((0, 30), 3.0, (1, "normal")),  # UI.x == LI.x is not negative: plain distance
        ((-0.4, 0), -0.04, (2, "edge to edge")),
        ((-0.5, 0), -0.05, (3, "anterior crossbite")),
        ((-24, 7), -2.5, (3, "anterior crossbite")),  # UI behind LI: negative, |(24, 7)| = 25 px
    ],
)
def test_mw_classes(ui_minus_li: tuple[float, float], mw: float, expected: tuple[int, str]) -> None:
    li = BASE["Lower incisal incision"]
    ui = (li[0] + ui_minus_li[0], li[1] + ui_minus_li[1])
    result = analyze(with_points(Upper_incisal_incision=ui), TENTH_MM)
    assert result.measurements["MW"] == mw
    assert entry(result, "MW")["classification"] == {"type": expected[0], "label": expected[1]}


def test_mw_is_null_without_spacing_and_the_rest_is_measured() -> None:
    result = analyze(BASE, None)
    assert result.measurements["MW"] is None
    assert entry(result, "MW")["classification"] is None
    assert entry(result, "MW")["spacingSource"] is None
    assert all(v is not None for k, v in result.measurements.items() if k != "MW")
    assert result.measurements["FHI"] == 0.699  # isotropic: pixel and mm ratios agree


def test_anisotropic_spacing() -> None:
    # Rows 0.2 mm, columns 0.1 mm. MW: UI - LI = (24, 7) px -> hypot(2.4, 1.4) = 2.7785 mm.
    # FHI with vertical |Go - S| = 70 px = 14 mm and horizontal |Me - N| = 100 px = 10 mm: 1.4
    # (0.7 from pixels).
    spacing = PixelSpacing(0.2, 0.1, SpacingSource.DETECTOR)
    result = analyze(with_points(Gonion=(100, 170), Menton=(900, 100)), spacing)
    assert result.measurements["MW"] == pytest.approx(math.hypot(2.4, 1.4), abs=ROUNDING)
    assert result.measurements["MW"] == 2.78
    assert entry(result, "MW")["spacingSource"] == "detector"
    assert result.measurements["FHI"] == 1.4
    assert analyze(with_points(Gonion=(100, 170), Menton=(900, 100)), None).measurements["FHI"] == 0.7
    swapped = analyze(with_points(Gonion=(100, 170), Menton=(900, 100)), PixelSpacing(0.1, 0.2, SpacingSource.UNKNOWN))
    assert swapped.measurements["FHI"] == 0.35  # 7 mm / 20 mm


# --- facing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"Anterior_nasal_spine": (700, 700)},  # palatal cross > 0
        {"Supramentale": (800, 900)},  # AB cross < 0
        {"Subspinale": (650, 700), "Supramentale": (700, 700)},  # ANB < 0
        {"Upper_incisal_incision": (676, 657)},  # MW < 0
        {"Sella": (100, 100.5), "Pogonion": (712.25, 1003.5)},  # sub-pixel
    ],
)
def test_left_facing_measures_as_its_mirror_image(changes: dict[str, Point]) -> None:
    right = with_points(**changes)
    as_right, as_left = analyze(right, TENTH_MM), analyze(mirrored(right), TENTH_MM)
    assert as_right.facing == "right" and as_left.facing == "left"
    assert as_left.measurements == as_right.measurements
    assert as_left.analysis == as_right.analysis


def test_facing_falls_back_to_the_palate_without_sella() -> None:
    left = mirrored(with_points(Sella=None))
    result = analyze(left, TENTH_MM)
    assert result.facing == "left"
    assert result.measurements["ODI"] == 68.84  # as facing right; not the sign-flipped 82.88 + 14.04
    assert result.measurements["MW"] == 2.5


def test_facing_defaults_to_right_without_any_pair() -> None:
    assert analyze({"Upper incisal incision": (0, 0), "Lower incisal incision": (10, 0)}, TENTH_MM).facing == "right"


# --- missing and degenerate landmarks ------------------------------------------------------------


@pytest.mark.parametrize(
    ("missing", "none"),
    [
        ("Sella", {"SNA", "SNB", "ANB", "FHI", "SN_GoGn"}),
        ("Nasion", {"SNA", "SNB", "ANB", "APDI", "FHI", "SN_GoGn"}),
        ("Subspinale", {"SNA", "ANB", "ODI", "APDI"}),
        ("Supramentale", {"SNB", "ANB", "ODI", "APDI"}),
        ("Porion", {"ODI", "APDI"}),
        ("Orbitale", {"ODI", "APDI"}),
        ("Posterior nasal spine", {"ODI", "APDI"}),
        ("Anterior nasal spine", {"ODI", "APDI"}),
        ("Pogonion", {"APDI"}),
        ("Menton", {"ODI", "FHI"}),
        ("Gnathion", {"SN_GoGn"}),
        ("Gonion", {"ODI", "FHI", "SN_GoGn"}),
        ("Lower incisal incision", {"MW"}),
        ("Upper incisal incision", {"MW"}),
        ("Upper lip", set()),
        ("Articulare", set()),
    ],
)
def test_missing_landmark_nulls_only_what_needs_it(missing: str, none: set[str]) -> None:
    points = dict(BASE)
    del points[missing]
    result = analyze(points, TENTH_MM)
    full = analyze(BASE, TENTH_MM).measurements
    assert {k for k, v in result.measurements.items() if v is None} == none
    assert {k: v for k, v in result.measurements.items() if k not in none} == {
        k: v for k, v in full.items() if k not in none
    }
    assert all(entry(result, name)["classification"] is None for name in none)


@pytest.mark.parametrize(
    ("changes", "none"),
    [
        ({"Sella": BASE["Nasion"]}, {"SNA", "SNB", "ANB", "SN_GoGn"}),  # S = N: no SN line
        ({"Orbitale": BASE["Porion"]}, {"ODI", "APDI"}),  # no FH line
        ({"Anterior_nasal_spine": BASE["Posterior nasal spine"]}, {"ODI", "APDI"}),
        ({"Supramentale": BASE["Subspinale"]}, {"ODI", "APDI"}),  # no AB line; SNA, SNB still defined
        ({"Gonion": BASE["Menton"]}, {"ODI"}),  # no mandibular plane; Go-Gn still defined
        ({"Gnathion": BASE["Gonion"]}, {"SN_GoGn"}),
        ({"Pogonion": BASE["Nasion"]}, {"APDI"}),
        ({"Menton": BASE["Nasion"]}, {"FHI"}),  # zero denominator
        ({"Subspinale": BASE["Nasion"]}, {"SNA", "ANB"}),  # A = N: A - N has no length; A - B still defined
        ({"Pogonion": (math.nan, 1000.0)}, {"APDI"}),  # a non-finite point counts as missing
    ],
)
def test_degenerate_geometry_gives_none(changes: dict[str, Point], none: set[str]) -> None:
    result = analyze(with_points(**changes), TENTH_MM)
    assert {k for k, v in result.measurements.items() if v is None} == none


def test_cosine_rounding_past_one_is_clamped() -> None:
    # u = (1, 5) and v = (1.1, 5.5) are parallel but their float cosine is 1.0000000000000002.
    u, v = (1.0, 5.0), (1.1, 5.5)
    assert (u[0] * v[0] + u[1] * v[1]) / (math.hypot(*u) * math.hypot(*v)) > 1
    result = analyze({"Nasion": (0.0, 0.0), "Sella": u, "Subspinale": v}, None)
    assert result.measurements["SNA"] == 0.0


def test_extra_landmarks_are_ignored() -> None:
    points = dict(BASE) | {"Upper incisor apex": (10.0, 10.0), "Sella turcica floor": (1.0, 1.0)}
    assert analyze(points, TENTH_MM).measurements == analyze(BASE, TENTH_MM).measurements


# --- norm sets -----------------------------------------------------------------------------------


def test_another_norm_set_needs_no_code_change() -> None:
    # A made-up set with only SNA: 80.54 is above its range; the other measurements stay unclassified.
    population = NormSet("TestPopulation", {"SNA": Norm(76.0, 80.0, (Band(2, "above test range", above=80.0),))})
    result = analyze(BASE, TENTH_MM, population)
    assert result.measurements == analyze(BASE, TENTH_MM).measurements
    assert entry(result, "SNA")["norm"] == {"set": "TestPopulation", "min": 76.0, "max": 80.0}
    assert entry(result, "SNA")["classification"] == {"type": 2, "label": "above test range"}
    assert entry(result, "SNB")["norm"] is None and entry(result, "SNB")["classification"] is None


def test_a_value_no_band_covers_is_unclassified() -> None:
    assert Norm(76.0, 80.0, (Band(2, "high", above=80.0),)).classify(70.0) is None


def test_nan_is_unclassified() -> None:
    assert ISBI2015.norms["SNA"].classify(math.nan) is None
