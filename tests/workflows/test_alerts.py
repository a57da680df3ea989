"""Public warnings: drafted from the running plan's template, issued only by a commander,
valid CAP 1.2 (checked against the official XSD), updates and cancels that replace the
original, a drill's Exercise, the Atom feed of the warnings in force; refusals that write
nothing; two commanders approving at once: one wins, the other 409."""
from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from lxml import etree

from command.auth import create_user
from gis.db import connect
from gis.errors import Conflict, Forbidden, Invalid, NotFound
from workflows import alerts, incidents, response
from workflows.cap import NS
from workflows.incidents import NewIncident

XSD = Path(__file__).resolve().parents[3] / "shared" / "standards" / "CAP-v1.2.xsd"
ATOM = "{http://www.w3.org/2005/Atom}"
T0 = dt.datetime(2026, 7, 1, 2, 0, tzinfo=dt.timezone.utc)          # 10:00 in the city
AT = (113.3405, 27.0005)                                              # in grid 430223001001001 (第001网格)
TWO_PARTS = ("MULTIPOLYGON(((113.3402 27.0002,113.3408 27.0002,113.3408 27.0008,113.3402 27.0008,113.3402 27.0002)),"
             "((113.3422 27.0002,113.3428 27.0002,113.3428 27.0008,113.3422 27.0002)))")


@pytest.fixture(scope="module")
def schema():
    return etree.XMLSchema(etree.parse(str(XSD)))


@pytest.fixture
def crew(db, tiny_city):
    """A commander on duty at the waterlogging plan's commander post, a second commander, a
    leader, an operator and a dispatcher."""
    users = {u: create_user(db, username=u, password="password-123", role=role, actor="test")
             for u, role in (("cmdr", "commander"), ("cmdr2", "commander"), ("boss", "leader"),
                             ("op", "operator"), ("disp", "dispatcher"))}
    post = db.execute("INSERT INTO duty_post (name) VALUES ('县应急指挥长') RETURNING id").fetchone()["id"]
    db.execute("INSERT INTO duty_shift (post_id, user_id, starts_at, ends_at) VALUES (%s, %s, %s, %s)",
               (post, users["cmdr"].id, T0 - dt.timedelta(hours=8), T0 + dt.timedelta(hours=16)))
    db.commit()
    return users


def flood(db, actor, *, drill=False, details=None, area_wkt=None, activate=True) -> int:
    made = incidents.create(db, NewIncident("建设路积水", "自然灾害", "水旱灾害", "Ⅳ", *AT,
                                            radius_m=None if area_wkt else 300, area_wkt=area_wkt, drill=drill,
                                            details={"depth": "35"} if details is None else details), actor, now=T0)
    if activate:
        response.activate(db, made["id"], actor, now=T0)
    return made["id"]


def valid(schema, xml: str) -> etree._Element:
    doc = etree.fromstring(xml.encode())
    assert schema.validate(doc), schema.error_log
    return doc


def text(doc, path: str) -> str | None:
    return doc.findtext(path.replace("cap:", f"{{{NS}}}"))


def counts(db) -> tuple[int, int, int]:
    """(alerts, alert audit rows, alert timeline rows): what a refusal must leave untouched."""
    row = db.execute("SELECT (SELECT count(*) FROM alert) AS a,"
                     " (SELECT count(*) FROM audit_log WHERE action LIKE 'alert.%%') AS b,"
                     " (SELECT count(*) FROM incident_event WHERE kind LIKE 'alert.%%') AS c").fetchone()
    return row["a"], row["b"], row["c"]


def test_an_alert_drafted_and_approved_is_valid_cap(db, crew, schema):
    inc = flood(db, crew["cmdr"])
    no = db.execute("SELECT incident_no FROM incident WHERE id = %s", (inc,)).fetchone()["incident_no"]
    d = alerts.draft(db, inc, crew["op"], now=T0 + dt.timedelta(minutes=5))
    assert d["state"] == "draft" and d["status"] == "Actual" and d["msg_type"] == "Alert" and "cap_url" not in d
    assert d["headline"] == "攸县城区内涝一般预警：联星街道第001网格"
    assert "35厘米" in d["preview"]["description"] and d["preview"]["area"]["circle"] == [113.3405, 27.0005, 0.3]
    assert d["identifier"] == f"citygrid.local-{no}-01"
    # The commander on duty is told it waits for approval; a draft is not public.
    told = db.execute("SELECT user_id, message FROM notification WHERE kind = 'alert.draft'").fetchall()
    assert [t["user_id"] for t in told] == [crew["cmdr"].id] and "待签发" in told[0]["message"]
    with pytest.raises(NotFound):
        alerts.issued_xml(db, d["id"])
    assert alerts.active(db, T0 + dt.timedelta(minutes=6)) == []

    sent = T0 + dt.timedelta(minutes=10, microseconds=500)
    issued = alerts.approve(db, d["id"], crew["cmdr"], now=sent)
    assert issued["state"] == "issued" and issued["decided_by"] == "cmdr" and issued["cap_url"] == f"/api/alerts/{d['id']}.cap"
    assert issued["sent_at"] == sent.replace(microsecond=0) and issued["expires_at"] == issued["sent_at"] + dt.timedelta(minutes=360)  # the plan's expires_min
    doc = valid(schema, alerts.issued_xml(db, d["id"]))
    assert text(doc, "cap:identifier") == d["identifier"] and text(doc, "cap:sender") == alerts.SENDER
    assert text(doc, "cap:status") == "Actual" and text(doc, "cap:incidents") == no
    assert text(doc, "cap:sent") == "2026-07-01T10:10:00+08:00"
    assert text(doc, "cap:info/cap:expires") == "2026-07-01T16:10:00+08:00"
    assert text(doc, "cap:info/cap:severity") == "Minor" and text(doc, "cap:info/cap:senderName") == "攸县应急指挥中心"
    assert text(doc, "cap:info/cap:area/cap:circle") == "27.000500,113.340500 0.3"
    kinds = [e["kind"] for e in incidents.events(db, inc) if e["kind"].startswith("alert.")]
    assert kinds == ["alert.drafted", "alert.issued"]
    assert [r["action"] for r in db.execute("SELECT action FROM audit_log WHERE entity = 'alert' ORDER BY id")] \
        == ["alert.draft", "alert.approve"]
    assert [a["id"] for a in alerts.active(db, sent)] == [d["id"]]
    assert alerts.active(db, sent + dt.timedelta(hours=7)) == []                     # expired


def test_a_drill_with_a_drawn_area_is_an_exercise_with_every_part(db, crew, schema):
    inc = flood(db, crew["cmdr"], drill=True, area_wkt=TWO_PARTS, activate=False)   # plan found by its scope
    d = alerts.draft(db, inc, crew["cmdr"], area_description="建设路东西两段", expires_in_min=90, note="汛期演练")
    assert d["status"] == "Exercise" and d["preview"]["area"]["description"] == "建设路东西两段"
    doc = valid(schema, alerts.approve(db, d["id"], crew["boss"], now=T0) and alerts.issued_xml(db, d["id"]))
    assert text(doc, "cap:status") == "Exercise" and text(doc, "cap:note").startswith("【演练】")
    assert "汛期演练" in text(doc, "cap:note")
    polygons = [p.text.split() for p in doc.iter(f"{{{NS}}}polygon")]
    assert len(polygons) == 2 and polygons[0][0] == polygons[0][-1] == "27.000200,113.340200"
    assert polygons[1][1] == "27.000200,113.342800"
    assert text(doc, "cap:info/cap:expires") == "2026-07-01T11:30:00+08:00"
    assert "【演练】" in next(e["message"] for e in incidents.events(db, inc) if e["kind"] == "alert.issued")


def test_an_update_supersedes_and_a_cancel_cancels_both_referencing_the_original(db, crew, schema):
    inc = flood(db, crew["cmdr"], activate=False)
    first = alerts.draft(db, inc, crew["op"])
    first = alerts.approve(db, first["id"], crew["cmdr"], now=T0)
    upd = alerts.draft(db, inc, crew["op"], msg_type="Update", references_id=first["id"], values={"depth": "60"})
    assert "60厘米" in upd["preview"]["description"]
    upd = alerts.approve(db, upd["id"], crew["cmdr"], now=T0 + dt.timedelta(hours=1))
    assert alerts.get(db, first["id"], crew["op"])["state"] == "superseded"
    doc = valid(schema, alerts.issued_xml(db, upd["id"]))
    assert text(doc, "cap:msgType") == "Update"
    assert text(doc, "cap:references") == f"{alerts.SENDER},{first['identifier']},2026-07-01T10:00:00+08:00"
    valid(schema, alerts.issued_xml(db, first["id"]))                       # still served: it was public
    # Only the one in force can be replaced; the superseded one names its successor.
    with pytest.raises(Conflict, match="not in force"):
        alerts.draft(db, inc, crew["op"], msg_type="Cancel", references_id=first["id"], note="积水已退")
    # Once the incident closes only a Cancel may still be drafted.
    incidents.set_status(db, inc, "closed", crew["cmdr"], now=T0 + dt.timedelta(hours=2))
    with pytest.raises(Conflict, match="closed"):
        alerts.draft(db, inc, crew["op"], msg_type="Update", references_id=upd["id"])
    with pytest.raises(Invalid, match="note"):
        alerts.draft(db, inc, crew["op"], msg_type="Cancel", references_id=upd["id"])
    cancel = alerts.draft(db, inc, crew["op"], msg_type="Cancel", references_id=upd["id"], note="积水已退，交通恢复")
    cancel = alerts.approve(db, cancel["id"], crew["cmdr"], now=T0 + dt.timedelta(hours=3))
    assert cancel["state"] == "issued" and cancel["headline"].startswith("解除：")
    assert alerts.get(db, upd["id"], crew["op"])["state"] == "cancelled"
    doc = valid(schema, alerts.issued_xml(db, cancel["id"]))
    assert text(doc, "cap:msgType") == "Cancel" and doc.find(f"{{{NS}}}info") is None
    assert text(doc, "cap:note") == "积水已退，交通恢复"
    assert text(doc, "cap:references") == f"{alerts.SENDER},{upd['identifier']},2026-07-01T11:00:00+08:00"
    assert alerts.active(db, T0 + dt.timedelta(hours=3)) == []
    assert [a["msg_type"] for a in alerts.alerts_of(db, inc)] == ["Cancel", "Update", "Alert"]


def test_an_unfilled_template_field_is_refused_by_name_and_nothing_is_written(db, crew):
    inc = flood(db, crew["cmdr"], details={})
    before = counts(db)
    with pytest.raises(Invalid, match="the warning template needs: depth"):
        alerts.draft(db, inc, crew["op"])
    assert counts(db) == before
    assert "40厘米" in alerts.draft(db, inc, crew["op"], values={"depth": 40})["preview"]["description"]


def test_bad_requests_are_refused_and_write_nothing(db, crew):
    inc, other = flood(db, crew["cmdr"], activate=False), flood(db, crew["cmdr"], activate=False)
    theirs = alerts.approve(db, alerts.draft(db, other, crew["op"])["id"], crew["cmdr"])
    pending = alerts.draft(db, inc, crew["op"])
    before = counts(db)
    for kwargs, error, words in (
            ({"msg_type": "Warning"}, Invalid, "not one of Alert, Update, Cancel"),
            ({"msg_type": "Update"}, Invalid, "references_id"),
            ({"references_id": theirs["id"]}, Invalid, "references nothing"),
            ({"msg_type": "Update", "references_id": theirs["id"]}, Invalid, "another incident"),
            ({"msg_type": "Update", "references_id": pending["id"]}, Conflict, "待签发"),
            ({"msg_type": "Update", "references_id": 10**9}, Invalid, "no such alert"),
            ({"expires_in_min": 0}, Invalid, "expires_in_min"),
            ({"values": {"area": "别处"}}, Invalid, "area_description")):
        with pytest.raises(error, match=words):
            alerts.draft(db, inc, crew["op"], **kwargs)
    assert counts(db) == before
    # No plan covers the incident: no template to write from.
    odd = incidents.create(db, NewIncident("疫情", "公共卫生事件", "传染病疫情", "Ⅳ", *AT, radius_m=100), "test")["id"]
    with pytest.raises(Invalid, match="no plan covers"):
        alerts.draft(db, odd, crew["op"])


def test_only_commanders_decide_once_and_a_rejection_needs_a_reason(db, crew):
    inc = flood(db, crew["cmdr"])
    d = alerts.draft(db, inc, crew["op"])
    with pytest.raises(Forbidden):
        alerts.approve(db, d["id"], crew["disp"])
    with pytest.raises(Forbidden):
        alerts.reject(db, d["id"], crew["op"], reason="不行")
    with pytest.raises(Invalid, match="reason"):
        alerts.reject(db, d["id"], crew["cmdr"], reason=" ")
    alerts.approve(db, d["id"], crew["cmdr"], now=T0)
    with pytest.raises(Conflict, match="already issued by cmdr at 2026-07-01 10:00"):
        alerts.approve(db, d["id"], crew["cmdr2"])
    with pytest.raises(Conflict, match="already issued"):
        alerts.reject(db, d["id"], crew["cmdr2"], reason="措辞不当")
    second = alerts.draft(db, inc, crew["op"], values={"depth": "50"})
    rejected = alerts.reject(db, second["id"], crew["boss"], reason="积水深度待核实")
    assert rejected["state"] == "rejected" and rejected["rejected_reason"] == "积水深度待核实"
    with pytest.raises(NotFound):
        alerts.issued_xml(db, second["id"])
    with pytest.raises(Conflict, match="rejected by boss"):
        alerts.approve(db, second["id"], crew["cmdr"])
    told = db.execute("SELECT message FROM notification WHERE kind = 'alert.rejected' AND user_id = %s",
                      (crew["op"].id,)).fetchall()
    assert len(told) == 1 and "积水深度待核实" in told[0]["message"]
    assert "alert.rejected" in [e["kind"] for e in incidents.events(db, inc)]
    assert db.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'alert.reject'").fetchone()["n"] == 1


def test_two_commanders_approving_at_once_one_wins_one_gets_409(db_url, db, crew):
    inc = flood(db, crew["cmdr"])
    d = alerts.draft(db, inc, crew["op"])
    barrier, results = threading.Barrier(2), []

    def approve(user):
        with connect(db_url) as conn:
            barrier.wait()
            try:
                alerts.approve(conn, d["id"], user)
                results.append("ok")
            except Conflict as e:
                results.append(str(e))

    threads = [threading.Thread(target=approve, args=(u,)) for u in (crew["cmdr"], crew["cmdr2"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results, key=len)[0] == "ok" and "already issued" in sorted(results, key=len)[1]
    assert db.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'alert.approve'").fetchone()["n"] == 1
    assert [e["kind"] for e in incidents.events(db, inc)].count("alert.issued") == 1


def test_the_feed_lists_the_warnings_in_force_newest_first(db, crew):
    real = flood(db, crew["cmdr"], activate=False)
    drill = flood(db, crew["cmdr"], drill=True, activate=False)
    a = alerts.approve(db, alerts.draft(db, real, crew["op"])["id"], crew["cmdr"], now=T0)
    b = alerts.approve(db, alerts.draft(db, drill, crew["op"])["id"], crew["cmdr"], now=T0 + dt.timedelta(minutes=1))
    alerts.draft(db, real, crew["op"], msg_type="Update", references_id=a["id"])    # a draft: not in the feed
    feed = etree.fromstring(alerts.atom(db, "http://cmd.example/", T0 + dt.timedelta(minutes=2)))
    assert feed.tag == f"{ATOM}feed" and feed.findtext(f"{ATOM}updated") == "2026-07-01T10:01:00+08:00"
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == ["【演练】" + b["headline"], a["headline"]]
    link = entries[1].find(f"{ATOM}link")
    assert link.get("rel") == "alternate" and link.get("type") == "application/cap+xml"
    assert link.get("href") == f"http://cmd.example/api/alerts/{a['id']}.cap"
    assert entries[1].findtext(f"{ATOM}id") == f"tag:citygrid.local,2026:cap:{a['identifier']}"
    assert "35厘米" in entries[1].findtext(f"{ATOM}summary")
    assert entries[1].findtext(f"{ATOM}author/{ATOM}name") == "攸县应急指挥中心"
    later = etree.fromstring(alerts.atom(db, "http://cmd.example", T0 + dt.timedelta(hours=7)))
    assert later.findall(f"{ATOM}entry") == []


def test_an_alert_stays_in_force_as_long_as_its_plan_says(db, crew, schema):
    """The gas-leak plan keeps its warning for 2 hours (expires_min: 120), not the 6-hour default."""
    made = incidents.create(db, NewIncident("建设路燃气管道泄漏", "事故灾难", "公共设施和设备事故", "Ⅳ", *AT, radius_m=150),
                            crew["cmdr"], now=T0)
    response.activate(db, made["id"], crew["cmdr"], plan_id="gas_leak", now=T0)
    d = alerts.draft(db, made["id"], crew["cmdr"], now=T0)
    issued = alerts.approve(db, d["id"], crew["cmdr"], now=T0 + dt.timedelta(minutes=3))
    assert issued["expires_at"] == T0 + dt.timedelta(minutes=3 + 120)
    assert text(valid(schema, alerts.issued_xml(db, d["id"])), "cap:info/cap:event") == "燃气泄漏"


@pytest.mark.parametrize("kwargs, field", [
    ({"values": {"depth": "35\x01"}}, "values.depth"),
    ({"values": {"de\x02pth": "35"}}, "values key"),
    ({"values": {"depth": "35\uffff"}}, "values.depth"),
    ({"note": "请核\x0b"}, "the note"),
    ({"area_description": "建设路\x1f一带"}, "area_description"),
])
def test_a_control_character_in_an_alert_is_refused_and_the_cap_and_feed_stay_parseable(db, crew, kwargs, field):
    inc = flood(db, crew["cmdr"])
    before = counts(db)
    with pytest.raises(Invalid, match=f"{field}.*control character U\\+") as refused:
        alerts.draft(db, inc, crew["op"], **kwargs)
    assert "remove it" in str(refused.value)
    assert counts(db) == before
    # Tab, newline and carriage return are text XML carries: drafted, issued and parsed.
    ok = alerts.draft(db, inc, crew["op"], values={"depth": "35"}, note="第一行\n第二行\t完", area_description="建设路\r一带")
    issued = alerts.approve(db, ok["id"], crew["cmdr"])
    assert etree.fromstring(alerts.issued_xml(db, issued["id"]).encode()).findtext(f"{{{NS}}}identifier")
    assert len(etree.fromstring(alerts.atom(db, "http://cmd.example/")).findall(f"{ATOM}entry")) == 1


@pytest.mark.parametrize("change, field", [
    ({"title": "建设路\x01积水"}, "the title"),
    ({"description": "积水\x00"}, "the description"),
    ({"details": {"depth": "3\x085"}}, "details.depth"),
    ({"details": {"de\x7fpth": "35", "pl\x1bace": "建设路"}}, "details key 'pl\\\\x1bace'"),
    ({"details": {"nested": ["ok", {"deep": "\ufffe"}]}}, "details.nested\\[1\\].deep"),
])
def test_a_control_character_in_an_incident_is_refused_naming_the_field(db, crew, change, field):
    fields = {"title": "建设路积水", "category": "自然灾害", "subtype": "水旱灾害", "level": "Ⅳ", "lon": AT[0],
              "lat": AT[1], "radius_m": 300, **change}
    with pytest.raises(Invalid, match=f"{field} contains the control character"):
        incidents.create(db, NewIncident(**fields), crew["cmdr"])
    assert db.execute("SELECT count(*) AS n FROM incident").fetchone()["n"] == 0


def test_a_control_character_already_in_an_incidents_details_is_not_published(db, crew):
    """Details stored before the check (or by hand) are refused when a warning is drafted from
    them; the drafter can give the value instead."""
    inc = flood(db, crew["cmdr"])
    db.execute("UPDATE incident SET details = jsonb_build_object('depth', '35' || chr(1)) WHERE id = %s", (inc,))
    db.commit()
    before = counts(db)
    with pytest.raises(Invalid, match="depth contains the control character U\\+0001"):
        alerts.draft(db, inc, crew["op"])
    assert counts(db) == before
    assert "40厘米" in alerts.draft(db, inc, crew["op"], values={"depth": "40"})["preview"]["description"]
