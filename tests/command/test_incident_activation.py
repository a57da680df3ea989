"""Automatic activation on report when more than one plan covers the incident: nothing is
started; the timeline says which plans apply and asks the commander to choose, each plan's
commander (the duty post's holder) is told, and the API answer names the choices."""
from __future__ import annotations

AT = {"lon": 113.3405, "lat": 27.0005}
ACCIDENT = {"category": "事故灾难", "subtype": "公共设施和设备事故", "level": "Ⅳ", "radius_m": 100}


def test_several_matching_plans_ask_the_commander_to_choose(client, login, db):
    cmdr = login("commander", username="cmdr")
    reporter = login("operator")
    user = db.execute("SELECT id FROM app_user WHERE username = 'cmdr'").fetchone()["id"]
    post = db.execute("INSERT INTO duty_post (name) VALUES ('县应急指挥长') RETURNING id").fetchone()["id"]
    db.execute("INSERT INTO duty_shift (post_id, user_id, starts_at, ends_at)"
               " VALUES (%s, %s, now() - interval '1 hour', now() + interval '8 hours')", (post, user))
    db.commit()

    r = client.post("/api/incidents", headers=reporter, json={**ACCIDENT, **AT, "title": "建设路路面塌陷燃气管破损"})
    assert r.status_code == 201, r.text
    inc, activation = r.json()["id"], r.json()["activation"]
    assert activation["plan_id"] is None
    assert [c["plan_id"] for c in activation["choices"]] == ["gas_leak", "road_collapse"]
    assert all(c["name"].startswith("攸县") for c in activation["choices"])

    detail = client.get(f"/api/incidents/{inc}", headers=cmdr).json()
    assert detail["tasks"] == [] and detail["activations"] == [] and detail["status"] == "reported"
    entry = [e for e in client.get(f"/api/incidents/{inc}/timeline", headers=cmdr).json()
             if e["kind"] == "plan.choose"]
    assert len(entry) == 1
    message = entry[0]["message"]
    assert message.startswith("多个预案适用：《攸县城镇燃气泄漏应急预案》、《攸县城市道路塌陷应急预案》，请指挥长选择启动")
    assert "县应急指挥长（cmdr）" in message
    # Both plans name the same commander post: its holder is told once, about this incident.
    told = db.execute("SELECT user_id, message FROM notification WHERE incident_id = %s", (inc,)).fetchall()
    assert [n["user_id"] for n in told] == [user] and "请指挥长选择启动" in told[0]["message"]
    assert db.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'plan.choose'").fetchone()["n"] == 1

    # The commander chooses; the chosen plan starts.
    r = client.post(f"/api/incidents/{inc}/activate", headers=cmdr, json={"plan_id": "gas_leak"})
    assert r.status_code == 200 and r.json()["plan_id"] == "gas_leak"


def test_one_matching_plan_still_starts_by_itself(client, login):
    cmdr = login("commander")
    r = client.post("/api/incidents", headers=cmdr, json={"category": "自然灾害", "subtype": "水旱灾害", "level": "Ⅳ",
                                                          **AT, "title": "建设路积水"})
    assert r.status_code == 201 and r.json()["activation"]["plan_id"] == "waterlogging"
