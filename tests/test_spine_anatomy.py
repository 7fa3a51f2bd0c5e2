"""Level names, order, discs, numbering variants and parsing of what users type."""
import pytest

from core.spine.anatomy import STANDARD, SpineConfiguration, configuration_for, is_disc, parse_level


def test_standard_order_and_discs():
    v = STANDARD.vertebrae
    assert v[:3] == ("C1", "C2", "C3") and v[6:8] == ("C7", "T1") and v[18:20] == ("T12", "L1")
    assert v[-2:] == ("L5", "S1") and len(v) == 25
    d = STANDARD.discs
    assert d[0] == "C2-C3" and "C1-C2" not in d and d[-1] == "L5-S1" and "C7-T1" in d and "T12-L1" in d
    assert len(d) == 23


def test_variants_follow_the_configuration():
    t13 = SpineConfiguration(thoracic=13)
    assert "T13" in t13.vertebrae and t13.disc_between("T13", "L1") == "T13-L1"
    assert t13.neighbours("T12") == ("T11", "T13")
    l6 = SpineConfiguration(lumbar=6)
    assert l6.vertebrae[-3:] == ("L5", "L6", "S1") and l6.discs[-1] == "L6-S1"
    lstv = SpineConfiguration(lumbar=4)  # sacralised L5
    assert "L5" not in lstv.vertebrae and lstv.discs[-1] == "L4-S1"
    eleven = SpineConfiguration(thoracic=11)
    assert eleven.neighbours("T11") == ("T10", "L1")
    assert "sacralised" in lstv.describe() and STANDARD.describe().startswith("standard")
    with pytest.raises(ValueError):
        SpineConfiguration(lumbar=7)
    assert configuration_for(["T12", "L6"]) == SpineConfiguration(lumbar=6)


def test_neighbours_disc_between_and_shift():
    assert STANDARD.neighbours("C1") == (None, "C2")
    assert STANDARD.neighbours("S1") == ("L5", None)
    assert STANDARD.disc_between("L5", "L4") == "L4-L5"
    assert STANDARD.disc_below("L5") == "L5-S1" and STANDARD.disc_above("C2") is None
    assert STANDARD.vertebrae_of_disc("C7-T1") == ("C7", "T1")
    assert STANDARD.shifted("T12", 2) == "L2" and STANDARD.shifted("L5", 2) is None
    with pytest.raises(ValueError, match="not adjacent"):
        STANDARD.disc_between("L3", "L5")
    with pytest.raises(ValueError, match="no intervertebral disc"):
        STANDARD.disc_between("C1", "C2")
    with pytest.raises(ValueError, match="T13"):
        STANDARD.index("T13")


@pytest.mark.parametrize("text,expected", [
    ("L4", "L4"), ("l4", "L4"), (" L 4 ", "L4"), ("sacrum", "S1"), ("S1", "S1"),
    ("L4/5", "L4-L5"), ("L4-5", "L4-L5"), ("L4-L5", "L4-L5"), ("l4 / l5", "L4-L5"), ("L4\u2013L5", "L4-L5"),
    ("L45", "L4-L5"), ("l45", "L4-L5"), ("C56", "C5-C6"), ("T1112", "T11-T12"),
    ("C7-T1", "C7-T1"), ("C7/T1", "C7-T1"), ("T12/L1", "T12-L1"), ("L5-S1", "L5-S1"), ("L5S1", "L5-S1"),
    ("L5/S1 disc", "L5-S1"), ("the L4-5 level", "L4-L5"), ("C2-3", "C2-C3"),
    ("T12", "T12"), ("T11", "T11"), ("C12", None), ("T13", None), ("L56", None), ("L3-L5", None),
    ("C1-C2", None), ("X4", None), ("", None), ("L0", None),
])
def test_parse_level(text, expected):
    if expected is None:
        with pytest.raises(ValueError):
            parse_level(text)
    else:
        assert parse_level(text) == expected


def test_parse_level_with_variants():
    assert parse_level("L56", SpineConfiguration(lumbar=6)) == "L5-L6"
    assert parse_level("L6-S1", SpineConfiguration(lumbar=6)) == "L6-S1"
    assert parse_level("T13", SpineConfiguration(thoracic=13)) == "T13"
    assert parse_level("L4-S1", SpineConfiguration(lumbar=4)) == "L4-S1"
    with pytest.raises(ValueError, match="sacralised"):
        parse_level("L5", SpineConfiguration(lumbar=4))
    assert is_disc("L4-L5") and not is_disc("L4")
