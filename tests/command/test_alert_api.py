"""The public-warning API on the tiny city: an operator drafts, a commander issues (签发),
the CAP message and the Atom feed are public but serve issued messages only; roles, area
limits and bad input are answered with a message and write nothing."""
from __future__ import annotations

from pathlib import Path

from lxml import etree

from workflows.cap import NS

XSD = Path(__file__).resolve().parents[3] / "shared" / "standards" / "CAP-v1.2.xsd"
ATOM = "{http://www.w3.org/2005/Atom}"
FLOOD = {"category": "自然灾害", "subtype": "水旱灾害", "level": "Ⅳ", "radius_m": 200, "lon": 113.3405, "lat": 27.0005,
         "title": "建设路积水", "details": {"depth": "30"}}


def _incident(client, headers, **extra) -> int:
    r = client.post("/api/incidents", headers=headers, json={**FLOOD, **extra})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _alert_rows(db) -> int:
    return db.execute("SELECT count(*) AS n FROM alert").fetchone()["n"]


def test_drafted_approved_served_as_cap_and_in_the_feed(client, login, db):
    cmdr, operator = login("commander"), login("operator")
    inc = _incident(client, cmdr)
    r = client.post(f"/api/incidents/{inc}/alerts", headers=operator, json={"values": {"depth": 45}, "note": "请核"})
    assert r.status_code == 201, r.text
    draft = r.json()
    assert draft["state"] == "draft" and draft["preview"]["headline"].startswith("攸县城区内涝")
    assert "45厘米" in draft["preview"]["description"] and draft["preview"]["instruction"]
    assert draft["preview"]["area"]["description"] == "联星街道第001网格"
    # Not public before it is issued: neither the CAP message nor the feed.
    assert client.get(f"/api/alerts/{draft['id']}.cap").status_code == 404
    assert etree.fromstring(client.get("/api/alerts.atom").content).findall(f"{ATOM}entry") == []

    r = client.post(f"/api/alerts/{draft['id']}/approve", headers=cmdr)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "issued" and r.json()["cap_url"] == f"/api/alerts/{draft['id']}.cap"
    cap = client.get(f"/api/alerts/{draft['id']}.cap")                         # public: no token
    assert cap.status_code == 200 and cap.headers["content-type"].startswith("application/cap+xml")
    doc = etree.fromstring(cap.content)
    assert etree.XMLSchema(etree.parse(str(XSD))).validate(doc)
    assert doc.findtext(f"{{{NS}}}identifier") == draft["identifier"] and doc.findtext(f"{{{NS}}}note") == "请核"
    # The JSON route does not swallow ".cap", and the ".cap" route does not swallow JSON.
    got = client.get(f"/api/alerts/{draft['id']}", headers=operator)
    assert got.status_code == 200 and got.json()["identifier"] == draft["identifier"]
    assert client.get("/api/alerts/999999.cap").status_code == 404
    feed = client.get("/api/alerts.atom")
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/atom+xml")
    entries = etree.fromstring(feed.content).findall(f"{ATOM}entry")
    assert len(entries) == 1 and entries[0].find(f"{ATOM}link").get("href").endswith(f"/api/alerts/{draft['id']}.cap")
    listed = client.get(f"/api/incidents/{inc}/alerts", headers=operator).json()
    assert [(a["id"], a["state"], a["cap_url"]) for a in listed] == [(draft["id"], "issued", f"/api/alerts/{draft['id']}.cap")]
    assert listed[0]["decided_by"] == "commander0" and listed[0]["sent_at"] and listed[0]["expires_at"]
    # Decided once: a second approval and a late rejection are 409.
    again = client.post(f"/api/alerts/{draft['id']}/approve", headers=login("leader"))
    assert again.status_code == 409 and "already issued by commander0" in again.json()["message"]
    assert client.post(f"/api/alerts/{draft['id']}/reject", headers=cmdr, json={"reason": "重写"}).status_code == 409


def test_a_drill_update_and_cancel_over_http(client, login, db):
    cmdr = login("commander")
    drill = client.post("/api/drills", headers=cmdr, json={"plan_id": "waterlogging", "lon": 113.3405, "lat": 27.0005,
                                                           "details": {"depth": "35"}})
    assert drill.status_code == 201, drill.text
    inc = drill.json()["id"]
    first = client.post(f"/api/incidents/{inc}/alerts", headers=cmdr, json={}).json()
    client.post(f"/api/alerts/{first['id']}/approve", headers=cmdr)
    upd = client.post(f"/api/incidents/{inc}/alerts", headers=cmdr,
                      json={"msg_type": "Update", "references_id": first["id"], "values": {"depth": "55"}}).json()
    client.post(f"/api/alerts/{upd['id']}/approve", headers=cmdr)
    cancel = client.post(f"/api/incidents/{inc}/alerts", headers=cmdr,
                         json={"msg_type": "Cancel", "references_id": upd["id"], "note": "演练结束"})
    assert cancel.status_code == 201, cancel.text
    assert client.post(f"/api/alerts/{cancel.json()['id']}/approve", headers=cmdr).status_code == 200
    states = {a["msg_type"]: a["state"] for a in client.get(f"/api/incidents/{inc}/alerts", headers=cmdr).json()}
    assert states == {"Alert": "superseded", "Update": "cancelled", "Cancel": "issued"}
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    for a in (first, upd, cancel.json()):
        doc = etree.fromstring(client.get(f"/api/alerts/{a['id']}.cap").content)
        assert schema.validate(doc), schema.error_log
        assert doc.findtext(f"{{{NS}}}status") == "Exercise"
    assert client.get(f"/api/alerts/{upd['id']}.cap").content.count(first["identifier"].encode()) == 1
    assert etree.fromstring(client.get("/api/alerts.atom").content).findall(f"{ATOM}entry") == []   # lifted


def test_roles_areas_and_bad_input(client, login, db):
    cmdr, operator, dispatcher = login("commander"), login("operator"), login("dispatcher")
    far = login("operator", areas=["430223001002"])                  # the other community
    inc = _incident(client, cmdr)
    other = _incident(client, cmdr)
    theirs = client.post(f"/api/incidents/{other}/alerts", headers=operator, json={}).json()
    client.post(f"/api/alerts/{theirs['id']}/approve", headers=cmdr)
    draft = client.post(f"/api/incidents/{inc}/alerts", headers=operator, json={}).json()
    before = _alert_rows(db)
    audit_before = db.execute("SELECT count(*) AS n FROM audit_log").fetchone()["n"]
    # Roles: a dispatcher neither drafts nor approves; an operator cannot approve.
    assert client.post(f"/api/incidents/{inc}/alerts", headers=dispatcher, json={}).status_code == 403
    assert client.post(f"/api/alerts/{draft['id']}/approve", headers=dispatcher).status_code == 403
    assert client.post(f"/api/alerts/{draft['id']}/approve", headers=operator).status_code == 403
    assert client.post(f"/api/alerts/{draft['id']}/reject", headers=dispatcher, json={"reason": "不行"}).status_code == 403
    # An incident out of the user's area is not there for them.
    assert client.get(f"/api/incidents/{inc}/alerts", headers=far).status_code == 404
    assert client.get(f"/api/alerts/{draft['id']}", headers=far).status_code == 404
    assert client.post(f"/api/incidents/{inc}/alerts", headers=far, json={}).status_code == 404
    # Bad input: a 4xx with a message, nothing written.
    for body, words in (({"msg_type": "Warning"}, "msg_type"),
                        ({"msg_type": "Update"}, "references_id"),
                        ({"msg_type": "Update", "references_id": theirs["id"]}, "another incident"),
                        ({"msg_type": "Cancel", "references_id": theirs["id"], "note": "x"}, "another incident"),
                        ({"expires_in_min": 0}, "expires_in_min"),
                        ({"values": {"depth": ""}}, "needs: depth")):
        r = client.post(f"/api/incidents/{inc}/alerts", headers=operator, json=body)
        assert r.status_code == 422 and words in r.json()["message"], (body, r.text)
    assert client.post(f"/api/alerts/{draft['id']}/reject", headers=cmdr, json={"reason": ""}).status_code == 422
    assert client.post("/api/incidents/999999/alerts", headers=operator, json={}).status_code == 404
    assert client.post("/api/alerts/999999/approve", headers=cmdr).status_code == 404
    assert _alert_rows(db) == before
    assert db.execute("SELECT count(*) AS n FROM audit_log").fetchone()["n"] == audit_before
    # The draft is still a draft, and a reasoned rejection goes through.
    r = client.post(f"/api/alerts/{draft['id']}/reject", headers=cmdr, json={"reason": "积水深度待核实"})
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    assert client.get(f"/api/alerts/{draft['id']}.cap").status_code == 404
