"""Emergency resources: registering them, and the nearest available of a type in true
distance order with an ETA — not the assigned or broken ones, nor other types."""
from __future__ import annotations

import pytest

from gis.errors import Invalid
from workflows.resources import NewResource, add_resource, nearest_available

AT = (113.3405, 27.0005)


def test_the_nearest_available_of_a_type_come_first_with_an_eta(db, tiny_city):
    made = {}
    for name, lon, status, kind in (("泵车甲", 113.3410, "available", "pump_truck"),     # ~50 m east
                                    ("泵车乙", 113.3440, "available", "pump_truck"),     # ~350 m
                                    ("泵车丙", 113.3406, "assigned", "pump_truck"),      # nearest, but busy
                                    ("泵车丁", 113.3407, "out_of_service", "pump_truck"),
                                    ("沙袋库", 113.3405, "available", "sandbags")):
        made[name] = add_resource(db, NewResource(name, kind, lon, 27.0005, status=status), actor="test")["id"]
    near = nearest_available(db, "pump_truck", *AT, limit=5)
    assert [r["name"] for r in near] == ["泵车甲", "泵车乙"]
    first = near[0]
    assert 45 < first["distance_m"] < 55 and first["eta_min"] == pytest.approx(first["distance_m"] / 500, abs=0.05)
    assert first["grid_code"] == "430223001001001"
    assert db.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'resource.add'").fetchone()["n"] == 5


def test_unknown_types_and_statuses_are_refused(db, tiny_city):
    with pytest.raises(Invalid, match="not one of"):
        add_resource(db, NewResource("气垫船", "hovercraft", *AT), actor="test")
    with pytest.raises(Invalid, match="status"):
        add_resource(db, NewResource("泵车", "pump_truck", *AT, status="resting"), actor="test")
    with pytest.raises(Invalid, match="not one of"):
        nearest_available(db, "hovercraft", *AT)
