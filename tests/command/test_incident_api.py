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
    for body, words in (({**FLOOD, "title": "外地", "lon": 113.6, "lat": 27.3}, "outside the jurisdiction"),
                        ({**FLOOD, **AT, "title": "x", "subtype": "地震"}, "subtype"),
                        ({**FLOOD, **AT, "title": "x", "level": "Ⅴ"}, "level"),
                        ({**FLOOD, **AT, "title": "x", "radius_m": -5}, "radius_m"),
                        ({**FLOOD, "title": "x", **AT, "radius_m": None,
                          "area": {"type": "Polygon", "coordinates": [[[113.34, 27.0], [113.341, 27.001],
                                                                       [113.341, 27.0], [113.34, 27.001], [113.34, 27.0]]]}},
                         "valid polygon"),
                        ({**FLOOD, "title": "x", "promote_from": {"kind": "case", "id": 999}}, "does not exist")):
        r = client.post("/api/incidents", headers=cmdr, json=body)
        assert r.status_code in (404, 422), (body, r.text)
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
