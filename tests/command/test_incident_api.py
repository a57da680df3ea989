"""The incident API end to end on the tiny city: a waterlogging alarm promoted to an incident
activates its plan; tasks, dispatch, a refused close, waivers, the close; role and area
checks; bad input answered with a message and nothing written."""
from __future__ import annotations

import datetime as dt

from psycopg.types.json import Jsonb

from workflows.resources import NewResource, add_resource

AT = {"lon": 113.3405, "lat": 27.0005}
FLOOD = {"category": "自然灾害", "subtype": "水旱灾害", "level": "Ⅳ", "radius_m": 200, "details": {"depth": "30"}}


def _alarm(db) -> int:
    """A waterlogging alarm from a water-level sensor, as the ingest worker would raise it."""
    db.execute("INSERT INTO device (id, type_code, location, username)"
               " VALUES ('wl-001', 'waterlogging_gauge', ST_SetSRID(ST_MakePoint(113.3405, 27.0005), 4326), 'wl-001')")
    alarm = db.execute("INSERT INTO device_alarm (device_id, rule_id, rule_name, severity, status, raised_at, last_at,"
                       " value, lon, lat) VALUES ('wl-001', 'flood', '道路积水', 'critical', 'active_unack', now(), now(),"
                       " %s, 113.3405, 27.0005) RETURNING id", (Jsonb({"depth_cm": 31}),)).fetchone()["id"]
    db.commit()
    return alarm


def test_a_waterlogging_alarm_becomes_an_incident_that_runs_its_plan_to_close(client, login, db):
    cmdr, disp = login("commander"), login("dispatcher")
    alarm = _alarm(db)
    r = client.post("/api/incidents", headers=cmdr, json={**FLOOD, "promote_from": {"kind": "device_alarm", "id": alarm}})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["activation"]["plan_id"] == "waterlogging" and made["activation"]["tasks"] == 4
    inc = made["id"]
    # Linked both ways.
    linked = client.get("/api/incidents/linked", params={"kind": "device_alarm", "id": alarm}, headers=disp).json()
    assert [i["id"] for i in linked] == [inc] and linked[0]["promoted"] is True
    got = client.get(f"/api/incidents/{inc}", headers=cmdr).json()
    assert got["status"] == "responding" and got["title"].startswith("道路积水")
    assert got["area"]["type"] == "MultiPolygon" and got["links"][0]["kind"] == "device_alarm"
    tasks = {t["step_id"]: t for t in got["tasks"]}
    # Resources: the nearest pump truck is suggested and dispatched; it is then assigned.
    truck = add_resource(db, NewResource("泵车1号", "pump_truck", 113.3412, 27.0005), actor="test")["id"]
    add_resource(db, NewResource("泵车2号", "pump_truck", 113.3435, 27.0005), actor="test")
    sug = client.get(f"/api/incidents/{inc}/suggestions", params={"task_id": tasks["pumps"]["id"]}, headers=disp).json()
    assert [n["name"] for n in sug[0]["nearest"]] == ["泵车1号", "泵车2号"] and sug[0]["nearest"][0]["eta_min"] > 0
    r = client.post(f"/api/incidents/{inc}/dispatch", headers=disp,
                    json={"resource_id": truck, "task_id": tasks["pumps"]["id"]})
    assert r.status_code == 201, r.text
    order = r.json()["id"]
    assert client.post(f"/api/dispatch-orders/{order}/acknowledge", headers=disp, json={}).json()["status"] == "acknowledged"
    # Closing is refused while mandatory tasks are open, naming them.
    r = client.post(f"/api/incidents/{inc}/status", headers=cmdr, json={"status": "closed"})
    assert r.status_code == 409 and "mandatory" in r.json()["message"] and "现场核实" in r.json()["message"]
    for step in ("verify", "pumps", "traffic_control"):
        t = next(t for t in client.get(f"/api/incidents/{inc}/tasks", headers=cmdr).json() if t["step_id"] == step)
        r = client.post(f"/api/incident-tasks/{t['id']}/waive", headers=cmdr,
                        json={"note": "演示：指挥长确认已处置", "version": t["version"]})
        assert r.status_code == 200, r.text
    # A stale version is a 409 with a message to reload.
    r = client.post(f"/api/incident-tasks/{tasks['verify']['id']}/reopen", headers=cmdr,
                    json={"version": tasks["verify"]["version"]})
    assert r.status_code == 409 and "reload" in r.json()["message"]
    r = client.post(f"/api/incidents/{inc}/status", headers=cmdr, json={"status": "closed", "note": "积水已排除"})
    assert r.status_code == 200 and r.json()["released"] == 1
    assert db.execute("SELECT status FROM resource WHERE id = %s", (truck,)).fetchone()["status"] == "available"
    kinds = [e["kind"] for e in client.get(f"/api/incidents/{inc}/timeline", headers=cmdr).json()]
    assert kinds[0] == "reported" and "activated" in kinds and kinds.count("task.waive") == 3
    assert "dispatch" in kinds and kinds[-2:] == ["status.closed", "dispatch.release"]     # the truck back at close
    actions = {r["action"] for r in db.execute("SELECT action FROM audit_log")}
    assert {"incident.create", "plan.activate", "task.waive", "dispatch.order", "incident.closed"} <= actions


def test_roles_areas_and_bad_input(client, login, db):
    cmdr, operator = login("commander"), login("operator")
    inspector_far = login("inspector", areas=["430223001002"])       # the other community
    r = client.post("/api/incidents", headers=operator, json={**FLOOD, **AT, "title": "积水", "activate": False})
    assert r.status_code == 201
    inc = r.json()["id"]
    assert r.json()["activation"] is None
    # An operator reports but does not command.
    assert client.post(f"/api/incidents/{inc}/activate", headers=operator, json={}).status_code == 403
    assert client.post(f"/api/incidents/{inc}/activate", headers=cmdr, json={}).status_code == 200
    # An inspector outside the area does not see it.
    assert client.get(f"/api/incidents/{inc}", headers=inspector_far).status_code == 404
    assert client.get("/api/incidents", headers=inspector_far).json() == []
    before = db.execute("SELECT count(*) AS n FROM incident").fetchone()["n"]
    for body, status, words in (
            ({**FLOOD, "title": "外地", "lon": 113.6, "lat": 27.3}, 422, "outside the jurisdiction"),
            ({**FLOOD, **AT, "title": "x", "subtype": "地震"}, 422, "subtype"),
            ({**FLOOD, **AT, "title": "x", "level": "Ⅴ"}, 422, "level"),
            ({**FLOOD, **AT, "title": "x", "radius_m": -5}, 422, "radius_m"),
            ({**FLOOD, "title": "x", **AT, "radius_m": None,
              "area": {"type": "Polygon", "coordinates": [[[113.34, 27.0], [113.341, 27.001],
                                                           [113.341, 27.0], [113.34, 27.001], [113.34, 27.0]]]}},
             422, "valid polygon"),
            ({**FLOOD, "title": "x", "promote_from": {"kind": "case", "id": 999}}, 404, "does not exist")):
        r = client.post("/api/incidents", headers=cmdr, json=body)
        assert r.status_code == status, (body, r.text)
        assert words in r.json()["message"], r.json()
    assert db.execute("SELECT count(*) AS n FROM incident").fetchone()["n"] == before
    r = client.post(f"/api/incidents/{inc}/level", headers=cmdr, json={"level": "Ⅲ", "reason": "积水扩大到5处"})
    assert r.status_code == 200 and r.json()["upgraded"] and r.json()["activations"][0]["levels"] == ["Ⅲ"]


def test_my_tasks_and_owner_actions(client, login, db):
    cmdr = login("commander")
    drainer_headers = login("dispatcher", username="drainer")
    drainer = db.execute("SELECT id FROM app_user WHERE username = 'drainer'").fetchone()["id"]
    post = db.execute("INSERT INTO duty_post (name) VALUES ('排水抢险队长') RETURNING id").fetchone()["id"]
    now = dt.datetime.now(dt.timezone.utc)
    db.execute("INSERT INTO duty_shift (post_id, user_id, starts_at, ends_at) VALUES (%s, %s, %s, %s)",
               (post, drainer, now - dt.timedelta(hours=1), now + dt.timedelta(hours=8)))
    db.commit()
    inc = client.post("/api/incidents", headers=cmdr, json={**FLOOD, **AT, "title": "积水"}).json()["id"]
    mine = client.get("/api/me/incident-tasks", headers=drainer_headers).json()
    assert [t["title"][:4] for t in mine] == ["现场核实", "调派排水"]          # the drainage role's Ⅳ steps
    verify = next(t for t in mine if t["title"].startswith("现场核实"))
    assert client.post(f"/api/incident-tasks/{verify['id']}/start", headers=drainer_headers, json={}).status_code == 200
    r = client.post(f"/api/incident-tasks/{verify['id']}/done", headers=drainer_headers, json={"note": "已核实，照片已传"})
    assert r.status_code == 200 and r.json()["status"] == "done"
    tasks = client.get(f"/api/incidents/{inc}/tasks", headers=cmdr).json()
    assert next(t for t in tasks if t["step_id"] == "pumps")["status"] == "open"


def test_any_plan_runs_as_a_drill_left_out_of_the_statistics(client, login, db):
    cmdr, operator = login("commander"), login("operator")
    assert client.post("/api/drills", headers=operator, json={"plan_id": "gas_leak", **AT}).status_code == 403
    r = client.post("/api/drills", headers=cmdr, json={"plan_id": "gas_leak", "level": "Ⅲ", **AT})
    assert r.status_code == 201, r.text
    drill = client.get(f"/api/incidents/{r.json()['id']}", headers=cmdr).json()
    assert drill["drill"] is True and drill["category"] == "事故灾难" and drill["level"] == "Ⅲ"
    assert {a["plan_id"] for a in drill["activations"]} == {"gas_leak"} and len(drill["activations"]) == 2
    assert drill["tasks"] and all(t["plan_id"] == "gas_leak" for t in drill["tasks"])
    assert client.post("/api/drills", headers=cmdr, json={"plan_id": "nope", **AT}).status_code == 422
    client.post("/api/incidents", headers=cmdr, json={**FLOOD, **AT, "title": "真实积水"})
    stats = client.get("/api/incidents/stats", headers=cmdr).json()
    assert stats["total"] == 1 and stats["by_category"] == {"自然灾害": 1} and stats["drills"] == 1
    told = db.execute("SELECT message FROM notification WHERE incident_id = %s", (drill["id"],)).fetchall()
    assert told and all(n["message"].startswith("【演练】") for n in told)


def _written(db) -> tuple[int, int, int]:
    """(incidents, incident audit rows, timeline rows): what a refusal must leave untouched."""
    row = db.execute("SELECT (SELECT count(*) FROM incident) AS i,"
                     " (SELECT count(*) FROM audit_log WHERE entity = 'incident') AS a,"
                     " (SELECT count(*) FROM incident_event) AS e").fetchone()
    return row["i"], row["a"], row["e"]


def _case(db, grid: str, lon: float) -> int:
    """A part case (a street lamp) in a grid, as the case desk would have filed it."""
    case = db.execute("INSERT INTO case_file (case_no, kind, part_class, description, source, state, grid_code, location)"
                      " VALUES ('2026070100' || %s, 'part', '0114', '路灯倒伏', 'inspector', 'dispatched', %s,"
                      " ST_SetSRID(ST_MakePoint(%s, 27.0005), 4326)) RETURNING id", (grid[-3:], grid, lon)).fetchone()
    db.commit()
    return case["id"]


def test_control_characters_are_refused_in_incidents_and_alerts_over_http(client, login, db):
    from lxml import etree

    cmdr, operator = login("commander"), login("operator")
    before = _written(db)
    for change, field in (({"title": "建设路\u0001积水"}, "the title"), ({"description": "积水\u001f"}, "the description"),
                          ({"details": {"depth": "3\u00085"}}, "details.depth"),
                          ({"details": {"dep\u000bth": "35"}}, "details key")):
        r = client.post("/api/incidents", headers=cmdr, json={**FLOOD, **AT, "title": "积水", **change})
        assert r.status_code == 422, r.text
        assert field in r.json()["message"] and "control character" in r.json()["message"], r.json()
    assert _written(db) == before
    inc = client.post("/api/incidents", headers=cmdr, json={**FLOOD, **AT, "title": "建设路积水"}).json()["id"]
    alerts = db.execute("SELECT count(*) AS n FROM alert").fetchone()["n"]
    for body, field in (({"values": {"depth": "4\u00015"}}, "values.depth"), ({"note": "请核\u0002"}, "the note"),
                        ({"area_description": "建设路\uffff一带"}, "area_description")):
        r = client.post(f"/api/incidents/{inc}/alerts", headers=operator, json=body)
        assert r.status_code == 422 and field in r.json()["message"], r.text
    assert db.execute("SELECT count(*) AS n FROM alert").fetchone()["n"] == alerts
    r = client.post(f"/api/incidents/{inc}/alerts", headers=operator, json={"values": {"depth": 45}, "note": "一\n二"})
    issued = client.post(f"/api/alerts/{r.json()['id']}/approve", headers=cmdr)
    assert issued.status_code == 200, issued.text
    assert etree.fromstring(client.get(f"/api/alerts/{r.json()['id']}.cap").content) is not None
    assert len(etree.fromstring(client.get("/api/alerts.atom").content).findall("{http://www.w3.org/2005/Atom}entry")) == 1


def test_promote_from_of_the_wrong_shape_is_a_422_and_writes_nothing(client, login, db):
    cmdr = login("commander")
    case = _case(db, "430223001001001", 113.3405)
    before = _written(db)
    for bad in ({"kind": ["case"], "id": case}, {"kind": {"case": 1}, "id": case}, {"kind": "case", "id": True},
                {"kind": "case", "id": str(case)}, {"kind": "case", "id": 1.5}, {"kind": "case", "id": 0},
                {"kind": "case", "id": 2**63}, {"kind": "case"}, {"kind": "parcel", "id": case}, "case:1", [case]):
        r = client.post("/api/incidents", headers=cmdr, json={**FLOOD, "promote_from": bad})
        assert r.status_code == 422, (bad, r.text)
        assert "promote_from" in r.json()["message"], r.json()
    assert _written(db) == before
    r = client.post("/api/incidents", headers=cmdr, json={**FLOOD, "promote_from": {"kind": "case", "id": case}})
    assert r.status_code == 201, r.text


def test_the_reporter_may_name_the_plan_among_those_covering_it(client, login, db):
    cmdr, operator = login("commander"), login("operator")
    collapse = {"category": "事故灾难", "subtype": "公共设施和设备事故", "level": "Ⅳ", **AT, "title": "建设路路面塌陷"}
    before = _written(db)
    for plan_id in ("waterlogging", "nope"):                              # not covering it; unknown
        r = client.post("/api/incidents", headers=cmdr, json={**collapse, "plan_id": plan_id})
        assert r.status_code == 422, r.text
        assert f"plan '{plan_id}' does not cover 事故灾难/公共设施和设备事故; the plans that do: gas_leak (" \
            in r.json()["message"] and "road_collapse (" in r.json()["message"], r.text
    r = client.post("/api/incidents", headers=operator, json={**collapse, "plan_id": "road_collapse"})
    assert r.status_code == 403 and "commander" in r.json()["message"], r.text
    r = client.post("/api/incidents", headers=cmdr, json={**collapse, "plan_id": "road_collapse", "activate": False})
    assert r.status_code == 422 and "activate" in r.json()["message"], r.text
    assert _written(db) == before
    r = client.post("/api/incidents", headers=cmdr, json={**collapse, "plan_id": "road_collapse"})
    assert r.status_code == 201, r.text
    assert r.json()["activation"]["plan_id"] == "road_collapse" and r.json()["activation"]["tasks"] > 0
    got = client.get(f"/api/incidents/{r.json()['id']}", headers=cmdr).json()
    assert {a["plan_id"] for a in got["activations"]} == {"road_collapse"} and got["status"] == "responding"
    # Without plan_id two plans cover it: nothing is activated by itself.
    r = client.post("/api/incidents", headers=cmdr, json={**collapse, "title": "另一处塌陷"})
    assert r.status_code == 201 and (r.json()["activation"] or {}).get("plan_id") is None


def test_a_user_limited_to_an_area_reports_and_promotes_only_inside_it(client, login, db):
    near = login("operator", areas=["430223001001"])                     # the community of AT
    home, away = _case(db, "430223001001002", 113.3415), _case(db, "430223001002001", 113.3425)
    before = _written(db)
    r = client.post("/api/incidents", headers=near, json={**FLOOD, "lon": 113.3425, "lat": 27.0005, "title": "别处积水"})
    assert r.status_code == 403 and "outside your area" in r.json()["message"], r.text
    r = client.post("/api/incidents", headers=near, json={**FLOOD, "promote_from": {"kind": "case", "id": away}})
    assert r.status_code == 404 and "not yours to see" in r.json()["message"], r.text
    # Promoting the other area's case to a place inside the area is refused all the same.
    r = client.post("/api/incidents", headers=near, json={**FLOOD, **AT, "promote_from": {"kind": "case", "id": away}})
    assert r.status_code == 404, r.text
    for kind in ("device_alarm", "camera_event", "unit_alarm"):          # each kind's own rule, asked of nothing
        r = client.post("/api/incidents", headers=near, json={**FLOOD, **AT, "promote_from": {"kind": kind, "id": 999}})
        assert r.status_code == 404 and "999 does not exist or is not yours to see" in r.json()["message"], r.text
    assert _written(db) == before
    r = client.post("/api/incidents", headers=near, json={**FLOOD, "promote_from": {"kind": "case", "id": home}})
    assert r.status_code == 201, r.text
    inc = r.json()["id"]
    assert client.get(f"/api/incidents/{inc}", headers=near).status_code == 200
    # Linking the other area's case later is refused the same way.
    r = client.post(f"/api/incidents/{inc}/links", headers=near, json={"kind": "case", "id": away})
    assert r.status_code == 404, r.text
    assert client.post(f"/api/incidents/{inc}/links", headers=login("commander"),
                       json={"kind": "case", "id": away}).status_code == 201


def test_resources_are_changed_by_their_managers_with_an_audit_row(client, login, db):
    cmdr, disp, lead = login("commander"), login("dispatcher"), login("shift_lead")
    unit = db.execute("INSERT INTO unit (name, kind) VALUES ('排水一队', 'team') RETURNING id").fetchone()["id"]
    db.commit()
    r = client.post("/api/resources", headers=lead, json={"name": "泵车1号", "type_code": "pump_truck", **AT})
    assert r.status_code == 201, r.text
    truck = r.json()["id"]
    r = client.post("/api/resources", headers=lead, json={"name": "泵车2号", "type_code": "pump_truck", **AT,
                                                          "unit_id": 999999})
    assert r.status_code == 422 and "unit 999999 does not exist" in r.json()["message"], r.text
    audits = lambda: db.execute("SELECT action, detail FROM audit_log WHERE entity = 'resource' AND entity_id = %s"  # noqa: E731
                                " ORDER BY id", (str(truck),)).fetchall()
    # Dispatchers send resources but do not manage them.
    assert client.patch(f"/api/resources/{truck}", headers=disp, json={"status": "out_of_service"}).status_code == 403
    assert client.patch("/api/resources/999999", headers=lead, json={"quantity": 2}).status_code == 404
    for body, words in (({"status": "assigned"}, "comes with a dispatch order"), ({"status": "resting"}, "status"),
                        ({"quantity": -1}, "quantity"), ({"quantity": "many"}, "quantity"), ({"quantity": 2.5}, "quantity"),
                        ({"unit_id": 999999}, "unit 999999 does not exist"), ({}, "nothing to change"),
                        ({"contact": "x" * 201}, "contact"), ({"restock": 0}, "restock"),
                        ({"restock": 1, "quantity": 1}, "not both")):
        r = client.patch(f"/api/resources/{truck}", headers=lead, json=body)
        assert r.status_code == 422 and words in r.json()["message"], (body, r.text)
    assert [a["action"] for a in audits()] == ["resource.add"]
    r = client.patch(f"/api/resources/{truck}", headers=lead, json={"unit_id": unit, "contact": "李四 13900000000"})
    assert r.status_code == 200 and r.json()["unit_id"] == unit and r.json()["contact"] == "李四 13900000000", r.text
    assert [a["action"] for a in audits()] == ["resource.add", "resource.contact", "resource.unit_id"]
    # Bound to the unit, a dispatch reaches it; while the order is out its status is not changed by hand.
    inc = client.post("/api/incidents", headers=cmdr, json={**FLOOD, **AT, "title": "积水"}).json()["id"]
    r = client.post(f"/api/incidents/{inc}/dispatch", headers=disp, json={"resource_id": truck})
    assert r.status_code == 201 and r.json()["command_id"], r.text
    assert db.execute("SELECT unit_id FROM unit_command WHERE id = %s", (r.json()["command_id"],)).fetchone()["unit_id"] == unit
    r = client.patch(f"/api/resources/{truck}", headers=lead, json={"status": "available"})
    assert r.status_code == 409 and "dispatch order" in r.json()["message"], r.text
    r = client.patch(f"/api/resources/{truck}", headers=lead, json={"status": "out_of_service"})
    assert r.status_code == 409
    assert db.execute("SELECT status FROM resource WHERE id = %s", (truck,)).fetchone()["status"] == "assigned"
    order = db.execute("SELECT id FROM dispatch_order WHERE resource_id = %s", (truck,)).fetchone()["id"]
    assert client.post(f"/api/dispatch-orders/{order}/release", headers=disp, json={}).status_code == 200
    r = client.patch(f"/api/resources/{truck}", headers=lead, json={"status": "out_of_service"})
    assert r.status_code == 200 and r.json()["status"] == "out_of_service", r.text
    assert audits()[-1]["action"] == "resource.status" and audits()[-1]["detail"]["to"] == "out_of_service"
    # A store restocked (补充库存) is offered again.
    store = client.post("/api/resources", headers=lead, json={"name": "沙袋库", "type_code": "sandbags", **AT,
                                                              "quantity": 0}).json()["id"]
    near = lambda: [n["id"] for n in client.get("/api/resources/nearest", headers=disp,  # noqa: E731
                                                params={"type": "sandbags", **AT}).json()]
    assert near() == []
    assert client.patch(f"/api/resources/{store}", headers=cmdr, json={"quantity": 800}).json()["quantity"] == 800
    assert near() == [store]
    assert client.patch(f"/api/resources/{store}", headers=cmdr, json={"restock": 200}).json()["quantity"] == 1000
