"""The duty API on the tiny city: shift leads make posts and shifts, everyone reads who is on
duty; a role without duty.manage gets 403; naive times, overlaps and bad bulk lists are 4xx
with a message and leave nothing written; hand-overs from holder to next holder."""
from __future__ import annotations

import datetime as dt

CST = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime.now(CST).replace(second=0, microsecond=0)
CHIEF = "县应急指挥长"


def iso(t: dt.datetime) -> str:
    return t.isoformat()


def shift_count(db) -> int:
    return db.execute("SELECT count(*) AS n FROM duty_shift").fetchone()["n"]


def user_id(db, username: str) -> int:
    return db.execute("SELECT id FROM app_user WHERE username = %s", (username,)).fetchone()["id"]


def test_roles_posts_and_shifts(client, login, db):
    lead, op = login("shift_lead"), login("operator", display_name="陈受理员")
    r = client.post("/api/duty/posts", headers=op, json={"name": CHIEF})
    assert r.status_code == 403 and "duty.manage" in r.json()["message"]
    r = client.post("/api/duty/posts", headers=lead, json={"name": CHIEF, "phone": "0731-1234567"})
    assert r.status_code == 201, r.text
    post = r.json()["id"]
    assert client.post("/api/duty/posts", headers=lead, json={"name": CHIEF}).status_code == 409
    assert [p["name"] for p in client.get("/api/duty/posts", headers=op).json()] == [CHIEF]

    body = {"post": CHIEF, "username": "operator1", "starts_at": iso(NOW - dt.timedelta(hours=2)),
            "ends_at": iso(NOW + dt.timedelta(hours=2))}
    r = client.post("/api/duty/shifts", headers=op, json=body)
    assert r.status_code == 403 and shift_count(db) == 0
    r = client.post("/api/duty/shifts", headers=lead, json=body)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["post_id"] == post and first["display_name"] == "陈受理员"
    assert db.execute("SELECT actor FROM audit_log WHERE action = 'duty.shift.add'").fetchone()["actor"] == "shift_lead0"

    now = {p["post"]: p for p in client.get("/api/duty/now", headers=op).json()}
    assert now[CHIEF]["holder"]["display_name"] == "陈受理员"
    assert dt.datetime.fromisoformat(now[CHIEF]["until"]) == NOW + dt.timedelta(hours=2)
    later = client.get("/api/duty/now", headers=op, params={"at": iso(NOW + dt.timedelta(hours=3))}).json()
    assert later[0]["holder"] is None

    # An overlap names the clashing shift; a naive time is a 422 saying what to send.
    clash = {**body, "starts_at": iso(NOW + dt.timedelta(hours=1)), "ends_at": iso(NOW + dt.timedelta(hours=5))}
    r = client.post("/api/duty/shifts", headers=lead, json=clash)
    assert r.status_code == 409 and f"shift {first['id']}" in r.json()["message"]
    naive = {**body, "starts_at": "2026-03-02T08:00:00", "ends_at": "2026-03-02T20:00:00"}
    r = client.post("/api/duty/shifts", headers=lead, json=naive)
    assert r.status_code == 422 and r.json()["message"] == "starts_at: needs a time zone, e.g. 2026-03-02T08:00:00+08:00; " \
        "ends_at: needs a time zone, e.g. 2026-03-02T08:00:00+08:00"
    r = client.post("/api/duty/shifts", headers=lead, json=[clash, naive])
    assert r.status_code == 422 and r.json()["message"].startswith("shift #2: starts_at: needs a time zone")
    r = client.get("/api/duty/roster", headers=op, params={"since": "2026-03-02T00:00:00"})
    assert r.status_code == 422 and "since needs a time zone" in r.json()["message"]
    r = client.post("/api/duty/shifts", headers=lead, json={**body, "username": "nobody"})
    assert r.status_code == 422 and "nobody" in r.json()["message"]
    assert shift_count(db) == 1

    roster = client.get("/api/duty/roster", headers=op, params={"since": iso(NOW - dt.timedelta(days=1)),
                                                                "until": iso(NOW + dt.timedelta(days=1)),
                                                                "post": CHIEF}).json()
    assert [s["id"] for s in roster] == [first["id"]]

    assert client.delete(f"/api/duty/shifts/{first['id']}", headers=op).status_code == 403
    r = client.delete(f"/api/duty/shifts/{first['id']}", headers=lead)
    assert r.status_code == 200 and shift_count(db) == 0
    assert client.delete(f"/api/duty/shifts/{first['id']}", headers=lead).status_code == 404


def test_a_list_of_shifts_is_saved_whole_or_not_at_all(client, login, db):
    lead = login("shift_lead")
    login("dispatcher")
    client.post("/api/duty/posts", headers=lead, json={"name": CHIEF})
    day = NOW.replace(hour=8, minute=0)
    week = [{"post": CHIEF, "username": "dispatcher1", "starts_at": iso(day + dt.timedelta(days=d)),
             "ends_at": iso(day + dt.timedelta(days=d + 1))} for d in range(3)]
    too_long = {**week[0], "starts_at": iso(day + dt.timedelta(days=5)), "ends_at": iso(day + dt.timedelta(days=6, hours=1))}
    r = client.post("/api/duty/shifts", headers=lead, json=[*week, too_long])
    assert r.status_code == 422 and "shift #4 of 4" in r.json()["message"] and "24 hours" in r.json()["message"]
    assert shift_count(db) == 0
    r = client.post("/api/duty/shifts", headers=lead, json=week)
    assert r.status_code == 201 and len(r.json()) == 3 and shift_count(db) == 3


def test_hand_over_through_the_api(client, login, db):
    lead, night, day, other = login("shift_lead"), login("operator"), login("dispatcher"), login("inspector", areas=["430223001001"])
    client.post("/api/duty/posts", headers=lead, json={"name": CHIEF})
    change = NOW + dt.timedelta(minutes=30)
    r = client.post("/api/duty/shifts", headers=lead, json=[
        {"post": CHIEF, "username": "operator1", "starts_at": iso(change - dt.timedelta(hours=12)), "ends_at": iso(change)},
        {"post": CHIEF, "username": "dispatcher2", "starts_at": iso(change), "ends_at": iso(change + dt.timedelta(hours=12))}])
    assert r.status_code == 201, r.text

    r = client.post("/api/duty/handovers", headers=day, json={"post": CHIEF, "note": "提前写"})
    assert r.status_code == 403
    r = client.post("/api/duty/handovers", headers=night, json={"post": CHIEF, "note": ""})
    assert r.status_code == 422
    r = client.post("/api/duty/handovers", headers=night, json={"post": CHIEF, "note": "夜间无异常"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["to_user_id"] == user_id(db, "dispatcher2")
    mine = client.get("/api/notifications", headers=day).json()
    assert any(n["message"].endswith("夜间无异常") for n in mine)

    assert client.get("/api/duty/handovers", headers=other, params={"post": CHIEF}).status_code == 403
    assert client.post(f"/api/duty/handovers/{made['id']}/ack", headers=night).status_code == 403
    r = client.post(f"/api/duty/handovers/{made['id']}/ack", headers=day)
    assert r.status_code == 200, r.text
    listed = client.get("/api/duty/handovers", headers=day, params={"post": CHIEF}).json()
    assert listed[0]["note"] == "夜间无异常" and listed[0]["acknowledged_at"] is not None
    assert client.post(f"/api/duty/handovers/{made['id']}/ack", headers=day).status_code == 409
    actions = [r["action"] for r in db.execute("SELECT action FROM audit_log WHERE action LIKE 'duty.handover%' ORDER BY id")]
    assert actions == ["duty.handover", "duty.handover.ack"]


def test_the_page_is_served_without_login(client):
    r = client.get("/duty")
    assert r.status_code == 200 and "/static/app/duty.js" in r.text
    assert "http://" not in r.text and "https://" not in r.text


def test_a_post_named_with_non_ascii_digits_is_a_name_not_an_id(client, login, db):
    lead = login("shift_lead")
    made = {}
    for name in ("²", "٣"):                       # a superscript two, an Arabic-Indic three: str.isdigit() says yes
        r = client.post("/api/duty/posts", headers=lead, json={"name": name})
        assert r.status_code == 201, r.text
        made[name] = r.json()["id"]
        r = client.post("/api/duty/shifts", headers=lead, json={
            "post": name, "username": "shift_lead0", "starts_at": iso(NOW - dt.timedelta(hours=1)),
            "ends_at": iso(NOW + dt.timedelta(hours=1))})
        assert r.status_code == 201, r.text
    for name, post_id in made.items():
        r = client.get("/api/duty/roster", headers=lead, params={"post": name})
        assert r.status_code == 200 and [s["post_id"] for s in r.json()] == [post_id], r.text
        r = client.get("/api/duty/handovers", headers=lead, params={"post": name})
        assert r.status_code == 200 and r.json() == [], r.text
    # An ASCII number is still the post's id; a name nobody has is a 404 that says where the posts are.
    r = client.get("/api/duty/roster", headers=lead, params={"post": str(made["²"])})
    assert r.status_code == 200 and [s["post_id"] for s in r.json()] == [made["²"]]
    r = client.get("/api/duty/handovers", headers=lead, params={"post": "¹²"})
    assert r.status_code == 404 and "/api/duty/posts" in r.json()["message"]
