"""Emergency resources: registering them, and the nearest available of a type in true
distance order with an ETA — not the assigned or broken ones, nor other types."""
from __future__ import annotations

import pytest

from gis.errors import Invalid
from workflows.resources import NewResource, add_resource, nearest_available, update_resource

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


def test_an_empty_store_is_not_suggested(db, tiny_city):
    empty = add_resource(db, NewResource("沙袋库（空）", "sandbags", 113.3406, 27.0005, quantity=0), actor="test")["id"]
    full = add_resource(db, NewResource("沙袋库", "sandbags", 113.3440, 27.0005, quantity=500), actor="test")["id"]
    assert [r["id"] for r in nearest_available(db, "sandbags", *AT)] == [full]
    update_resource(db, empty, {"quantity": 300}, actor="test")                  # restocked: offered again, first
    assert [r["id"] for r in nearest_available(db, "sandbags", *AT)] == [empty, full]


def test_a_resource_is_bound_to_a_unit_that_exists_and_its_changes_are_audited(db, tiny_city):
    unit = db.execute("INSERT INTO unit (name, kind) VALUES ('排水一队', 'team') RETURNING id").fetchone()["id"]
    db.commit()
    with pytest.raises(Invalid, match="unit 999999 does not exist"):
        add_resource(db, NewResource("泵车", "pump_truck", *AT, unit_id=999999), actor="test")
    made = add_resource(db, NewResource("泵车", "pump_truck", *AT, unit_id=unit), actor="test")["id"]
    assert db.execute("SELECT unit_id FROM resource WHERE id = %s", (made,)).fetchone()["unit_id"] == unit
    got = update_resource(db, made, {"status": "out_of_service", "contact": "张三 13800000000", "unit_id": None},
                          actor="test")
    assert (got["status"], got["contact"], got["unit_id"]) == ("out_of_service", "张三 13800000000", None)
    rows = db.execute("SELECT action, detail FROM audit_log WHERE entity = 'resource' AND entity_id = %s"
                      " AND action <> 'resource.add' ORDER BY id", (str(made),)).fetchall()
    assert [(r["action"], r["detail"]["from"], r["detail"]["to"]) for r in rows] == [
        ("resource.status", "available", "out_of_service"), ("resource.contact", None, "张三 13800000000"),
        ("resource.unit_id", unit, None)]
    for changes, words in (({"status": "assigned"}, "comes with a dispatch order"), ({"quantity": -1}, "whole number"),
                           ({"quantity": True}, "whole number"), ({"quantity": 10**7}, "to 1000000"),
                           ({"restock": 0}, "from 1"), ({"restock": "5"}, "from 1"), ({"restock": 10**6}, "over 1000000"),
                           ({"restock": 5, "quantity": 5}, "not both"),
                           ({"name": "x"}, "only status"), ({}, "nothing to change")):
        with pytest.raises(Invalid, match=words):
            update_resource(db, made, changes, actor="test")
    assert db.execute("SELECT count(*) AS n FROM audit_log WHERE entity = 'resource'").fetchone()["n"] == len(rows) + 1
