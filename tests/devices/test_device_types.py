"""The device type catalog: the shipped file parses, loads into the database and reads back
the same; a broken file is refused with a message naming the type and the field."""
from __future__ import annotations

import pytest

from devices.device_types import TYPES_PATH, load_types, read_types, types_from_db
from gis.errors import Invalid

NEEDED = {"manhole_cover", "waterlogging_gauge", "street_light", "garbage_bin", "gas_detector", "smoke_detector",
          "air_quality", "noise", "structure_tilt"}


def test_the_shipped_catalog_has_every_type_the_city_needs():
    types = read_types()
    assert NEEDED <= set(types)
    cover = types["manhole_cover"]
    assert cover.fields["open"]["type"] == "boolean" and "0102" in cover.part_classes
    open_rule = next(r for r in cover.rules if r.id == "cover_open")
    assert (open_rule.severity, open_rule.when, open_rule.case) == ("critical", {"field": "open", "equals": True},
                                                                    {"event": "0406"})
    assert types["street_light"].fields["on"]["type"] == "boolean"      # quoted in YAML, not True


def test_loaded_types_read_back_the_same(db):
    types = read_types()
    assert load_types(db, types, actor="test") == len(types)           # again: an update, not a clash
    assert types_from_db(db) == types
    assert db.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'device_type.load'").fetchone()["n"] >= 1


@pytest.mark.parametrize("change, message", [
    (("    fields:\n      open:", "    fields:\n      on: {type: boolean}\n      open:"), "quote names YAML reads as booleans"),
    (("tilt_deg: {type: number, unit: \"°\", min: 0, max: 90", "tilt_deg: {type: number, unit: \"°\", min: 90, max: 0"),
     "type manhole_cover field tilt_deg: a number field needs min < max"),
    (("when: {field: open, equals: true}", "when: {field: opened, equals: true}"),
     "type manhole_cover rule 1 \\(cover_open\\) when: field 'opened'"),
])
def test_a_broken_catalog_is_refused_naming_where(tmp_path, change, message):
    text = TYPES_PATH.read_text(encoding="utf-8")
    assert change[0] in text
    broken = tmp_path / "device_types.yaml"
    broken.write_text(text.replace(change[0], change[1], 1), encoding="utf-8")
    with pytest.raises(Invalid, match=message):
        read_types(broken)
