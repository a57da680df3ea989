import pytest

from gis.codes import CodeError, area_level, make_part_id, parse_grid_code, parse_part_id, street_kind


def test_grid_code_parts():
    g = parse_grid_code("430223001002015")
    assert (g.county, g.street, g.community, g.sequence) == ("430223", "430223001", "430223001002", "015")


def test_legacy_14_digit_code_is_widened():
    assert parse_grid_code("43022300100215").code == "430223001002015"


def test_numeric_column_read_as_float_is_accepted():
    assert parse_grid_code("430223001002015.0").code == "430223001002015"


@pytest.mark.parametrize("raw, message", [
    ("4302230010020", "13 digits"),
    ("43022300100201X", "digits only"),
    ("990223001002015", "not a province code"),
    ("430200001002015", "prefecture"),
    ("430223400002015", "outside 001–399"),
    ("430223001000015", "community part 000"),
    ("430223001002000", "sequence 000"),
    (None, "digits only"),
])
def test_bad_grid_codes_say_why(raw, message):
    with pytest.raises(CodeError, match=message):
        parse_grid_code(raw)


def test_street_kinds_follow_gbt_10114():
    assert [street_kind(s) for s in ("001", "099", "100", "199", "200", "399")] == \
        ["街道", "街道", "镇", "镇", "乡", "乡"]


def test_part_id_round_trip():
    pid = make_part_id("430223", "0114", 32)
    assert pid == "4302230114000032"
    p = parse_part_id(pid)
    assert (p.county, p.class_code, p.sequence) == ("430223", "0114", 32)


@pytest.mark.parametrize("raw", ["430223011400003", "4302230114000000", "9902230114000001"])
def test_bad_part_ids(raw):
    with pytest.raises(CodeError):
        parse_part_id(raw)


def test_area_levels():
    assert [area_level(c) for c in ("430223", "430223001", "430223001002", "430223001002015")] == \
        ["county", "street", "community", "grid"]
    with pytest.raises(CodeError):
        area_level("4302")
