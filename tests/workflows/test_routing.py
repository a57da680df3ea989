"""The routing suggestion follows 部件先属主、后属地；事件先属地、后属主, overridable by rules."""
from __future__ import annotations

import pytest

from gis.errors import Invalid
from workflows.routing import load_routing, suggest


@pytest.fixture
def depts(db, tiny_city):
    for name in ("联星街道办事处", "县环卫中心", "县公安局交警大队"):
        db.execute("INSERT INTO department (name) VALUES (%s)", (name,))
    db.commit()
    return {r["name"]: r["id"] for r in db.execute("SELECT id, name FROM department").fetchall()}


def _case(kind="event", cls="0102", grid="430223001001001", part=None):
    return {"kind": kind, "event_class": cls if kind == "event" else None,
            "part_class": cls if kind == "part" else None, "grid_code": grid, "part_id": part}


def test_events_go_to_the_area_then_rules_override(db, depts):
    assert suggest(db, _case()) is None                                   # nothing configured yet
    load_routing(db, {"area_departments": {"430223001": "联星街道办事处"},
                      "rules": [{"kind": "event", "class": "05", "dept": "县公安局交警大队"},
                                {"kind": "event", "class": "0102", "area": "430223001002", "dept": "县环卫中心"}]},
                 actor="test")
    assert suggest(db, _case()) == depts["联星街道办事处"]                      # 先属地
    assert suggest(db, _case(grid="430223001002001")) == depts["县环卫中心"]    # class × community rule
    assert suggest(db, _case(cls="0504")) == depts["联星街道办事处"]            # area beats a county-wide rule
    assert suggest(db, _case(cls="0504", grid="430223009001001")) == depts["县公安局交警大队"]   # no area dept


def test_parts_go_to_their_owner_first(db, depts):
    load_routing(db, {"area_departments": {"430223001": "联星街道办事处"}}, actor="test")
    owner = db.execute("SELECT dept_owner_id FROM part WHERE id = '4302230101000001'").fetchone()["dept_owner_id"]
    assert suggest(db, _case("part", "0101", part="4302230101000001")) == owner      # 先属主
    assert suggest(db, _case("part", "0101")) == depts["联星街道办事处"]                # no part: the area


def test_a_bad_matrix_is_refused_whole_with_every_problem(db, depts):
    load_routing(db, {"area_departments": {"430223001": "联星街道办事处"}}, actor="test")
    with pytest.raises(Invalid) as e:
        load_routing(db, {"area_departments": {"4302": "联星街道办事处"},
                          "rules": [{"kind": "event", "class": "77", "dept": "县环卫中心"},
                                    {"kind": "event", "class": "0102", "dept": "不存在的局"},
                                    {"kind": "event", "class": "0102", "dept": "县环卫中心"}]}, actor="test")
    message = str(e.value)
    for expected in ("area_departments.4302", "class '77' is not in the catalog", "'不存在的局' does not exist",
                     "rules[3]: a rule for (event, 0102, everywhere) is given twice"):
        assert expected in message
    assert db.execute("SELECT count(*) AS n FROM area_department").fetchone()["n"] == 1   # the old one stays


def test_loading_is_audited(db, depts):
    load_routing(db, {"rules": [{"kind": "event", "class": "0102", "dept": "县环卫中心"}]}, actor="cli:admin")
    row = db.execute("SELECT actor, detail FROM audit_log WHERE action = 'routing.load'").fetchone()
    assert row == {"actor": "cli:admin", "detail": {"area_departments": 0, "rules": 1}}
