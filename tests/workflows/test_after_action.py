"""The after-action report (评估报告) on the tiny city: a waterlogging incident run through its
plan at fixed times — verified, the plan activated, one task on time, one late, one waived,
an optional one cancelled at close, a pump truck acknowledged in time and sandbags nobody
acknowledged, a public warning issued, contained, closed — gives exact durations, counts and
a drill score whose parts add up; an open incident is refused, one out of sight is not found;
the map is drawn from PostGIS with north up and every name escaped."""
from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest

from command.auth import create_user
from gis.errors import Conflict, NotFound
from tests.workflows.conftest import EMERGENCY_T0
from workflows import after_action, alerts, dispatch, incidents, response
from workflows.incidents import NewIncident
from workflows.resources import NewResource, add_resource

T0 = EMERGENCY_T0
AT = (113.3405, 27.0005)
SVG = "{http://www.w3.org/2000/svg}"


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def run_flood(db, crew, drill: bool) -> dict:
    """The whole response, minute by minute (10:00 is minute 0)."""
    cmdr, drainer = crew["cmdr"], crew["drainer"]
    inc = incidents.create(db, NewIncident("建设路积水", "自然灾害", "水旱灾害", "Ⅳ", *AT, radius_m=300, drill=drill,
                                           details={"depth": "35"}), cmdr, now=T0)["id"]
    incidents.set_status(db, inc, "verified", cmdr, now=at(3))
    response.activate(db, inc, cmdr, now=at(5))                        # tasks due at 20, 35, 35, 50
    tasks = {t["step_id"]: t["id"] for t in response.tasks(db, inc)}
    response.act_on_task(db, tasks["verify"], "done", drainer, note="照片已回传", now=at(12))        # on time
    truck = add_resource(db, NewResource("<泵车&1号>", "pump_truck", 113.3410, 27.0015), actor="test")["id"]
    bags = add_resource(db, NewResource("城东仓库沙袋", "sandbags", 113.3395, 26.9995, quantity=1000), actor="test")["id"]
    order = dispatch.dispatch(db, inc, truck, cmdr, task_id=tasks["pumps"], now=at(20))["id"]        # ack due 30
    dispatch.dispatch(db, inc, bags, cmdr, quantity=200, now=at(22))                                 # ack due 32
    dispatch.update_order(db, order, "acknowledge", cmdr, now=at(24))
    alert = alerts.draft(db, inc, cmdr, now=at(25))
    alerts.approve(db, alert["id"], cmdr, now=at(26))
    response.act_on_task(db, tasks["traffic_control"], "waive", cmdr, note="积水路段已封闭，无需另设围挡", now=at(30))
    dispatch.update_order(db, order, "arrive", cmdr, now=at(32))
    assert dispatch.fire_due(db, now=at(33)) == 1                       # the sandbags, never acknowledged
    response.act_on_task(db, tasks["pumps"], "done", drainer, now=at(40))                           # 5 min late
    dispatch.update_order(db, order, "release", cmdr, now=at(50))
    incidents.set_status(db, inc, "contained", cmdr, now=at(55))
    with db.transaction():
        response.close(db, inc, cmdr, note="积水已排除", now=at(60))        # "inform" (optional) cancelled
        dispatch.release_all(db, inc, cmdr, now=at(60))
    return {"id": inc, "truck": truck, "bags": bags, "tasks": tasks}


def test_a_closed_incident_has_exact_durations_counts_and_resources(db, crew):
    run = run_flood(db, crew, drill=False)
    r = after_action.report(db, run["id"], crew["cmdr"])
    assert r["incident"]["incident_no"].startswith("YJ20260701") and r["incident"]["drill"] is False
    assert r["incident"]["grid_code"] == "430223001001001" and r["incident"]["community"] == "东正社区"
    assert r["durations"] == {"verified": 180, "activated": 300, "first_dispatch": 1200, "contained": 3300,
                              "closed": 3600}
    assert r["milestones"]["first_dispatch"] == at(20)
    assert [(p["plan_id"], p["version"], p["level"], p["automatic"], p["activated_by"], p["activated_at"])
            for p in r["plans"]] == [("waterlogging", 1, "Ⅳ", False, "cmdr", at(5))]
    assert r["tasks"]["counts"] == {"total": 4, "on_time": 1, "late": 1, "waived": 1, "not_done": 0, "cancelled": 1,
                                    "mandatory": 3, "mandatory_done": 2, "mandatory_waived": 1, "escalated": 0}
    tasks = {t["step_id"]: t for t in r["tasks"]["items"]}
    assert (tasks["verify"]["outcome"], tasks["verify"]["late_by_s"], tasks["verify"]["owner"]) == ("on_time", 0, "drainer")
    assert (tasks["pumps"]["outcome"], tasks["pumps"]["late_by_s"], tasks["pumps"]["finished_at"]) == ("late", 300, at(40))
    assert tasks["pumps"]["due_at"] == at(35) and tasks["pumps"]["post"] == "排水抢险队长"
    assert tasks["traffic_control"]["outcome"] == "waived" and tasks["traffic_control"]["late_by_s"] is None
    assert tasks["traffic_control"]["waived_reason"] == "积水路段已封闭，无需另设围挡"
    assert tasks["inform"]["outcome"] == "cancelled"
    orders = {o["resource_id"]: o for o in r["resources"]["orders"]}
    truck, bags = orders[run["truck"]], orders[run["bags"]]
    assert (truck["sent_at"], truck["acknowledged_at"], truck["ack_s"], truck["ack_in_time"]) == (at(20), at(24), 240, True)
    assert (truck["arrived_at"], truck["released_at"], truck["escalated"]) == (at(32), at(50), False)
    assert (bags["ack_s"], bags["ack_in_time"], bags["escalated"], bags["released_at"]) == (None, False, True, at(60))
    assert [(t["type_code"], t["orders"], t["quantity"]) for t in r["resources"]["by_type"]] == [
        ("pump_truck", 1, 1), ("sandbags", 1, 200)]
    [alert] = r["alerts"]
    assert (alert["msg_type"], alert["status"], alert["state"], alert["sent_at"], alert["decided_by"]) == (
        "Alert", "Actual", "issued", at(26), "cmdr")
    kinds = [e["kind"] for e in r["timeline"]]
    assert kinds[0] == "reported" and "alert.issued" in kinds and "dispatch.escalated" in kinds
    assert r["timeline"][-1]["kind"] == "dispatch.release" and r["timeline"][-1]["at"] == at(60)
    # A real incident is assessed by the same parts, but not scored.
    assert r["score"] is None and r["assessment"]["total"] == 59.1


def test_a_drill_is_scored_and_its_parts_add_up(db, crew):
    run = run_flood(db, crew, drill=True)
    r = after_action.report(db, run["id"], crew["cmdr"])
    assert r["incident"]["drill"] is True and r["alerts"][0]["status"] == "Exercise"
    score = r["score"]
    parts = {p["key"]: p for p in score["parts"]}
    assert sum(p["weight"] for p in score["parts"]) == 100 == score["max"]
    assert {k: (p["weight"], p["points"]) for k, p in parts.items()} == {
        "tasks_on_time": (40, 13.3),       # 1 of the 3 due (the cancelled optional one does not count)
        "mandatory_done": (20, 13.3),      # 2 of 3 done, 1 waived
        "activation_time": (15, 15.0),     # 5 minutes, within the 10 asked
        "dispatch_ack": (15, 7.5),         # the truck in time, the sandbags never
        "public_warning": (10, 10.0)}
    assert parts["activation_time"]["value"] == 300 and parts["tasks_on_time"]["measured"] == "1/3"
    assert score["total"] == round(sum(p["points"] for p in score["parts"]), 1) == 59.1


def test_level_history_and_what_never_happened(db, crew):
    inc = incidents.create(db, NewIncident("河堤渗水", "自然灾害", "水旱灾害", "Ⅳ", *AT), crew["cmdr"], now=T0)["id"]
    incidents.set_level(db, inc, "Ⅲ", "渗水点增加到3处", crew["cmdr"], now=at(10))
    response.close(db, inc, crew["cmdr"], now=at(20))
    r = after_action.report(db, inc, crew["cmdr"])
    assert [(h["level"], h["from"], h["at"]) for h in r["level_history"]] == [("Ⅳ", None, T0), ("Ⅲ", "Ⅳ", at(10))]
    assert r["level_history"][1]["reason"] == "渗水点增加到3处" and r["level_history"][1]["actor"] == "cmdr"
    assert r["durations"] == {"verified": 1200, "activated": None, "first_dispatch": None, "contained": None,
                              "closed": 1200}
    assert r["plans"] == [] and r["resources"]["orders"] == [] and r["tasks"]["counts"]["total"] == 0
    parts = {p["key"]: p for p in r["assessment"]["parts"]}
    assert parts["activation_time"]["points"] == 0 and parts["activation_time"]["measured"] == "未启动"
    assert r["assessment"]["total"] == 0


def test_an_open_incident_is_refused_and_one_out_of_sight_is_not_found(db, crew):
    inc = incidents.create(db, NewIncident("建设路积水", "自然灾害", "水旱灾害", "Ⅳ", *AT, radius_m=300), crew["cmdr"],
                           now=T0)["id"]
    with pytest.raises(Conflict, match="once it is closed"):
        after_action.report(db, inc, crew["cmdr"])
    response.close(db, inc, crew["cmdr"], now=at(30))
    far = create_user(db, username="far", password="password-123", role="inspector", areas=["430223001002"],
                      actor="test")
    with pytest.raises(NotFound):
        after_action.report(db, inc, far)
    near = create_user(db, username="near", password="password-123", role="inspector", areas=["430223001001"],
                       actor="test")
    assert after_action.report(db, inc, near)["durations"]["closed"] == 1800


def test_the_map_shows_the_grids_area_point_and_resources_north_up(db, crew):
    run = run_flood(db, crew, drill=False)
    svg = after_action.map_svg(db, run["id"])
    root = ET.fromstring(svg)                      # well-formed: every name escaped
    assert root.tag == f"{SVG}svg" and root.get("viewBox") == "0 0 800 560"
    assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")    # nothing fetched
    # The 300 m circle reaches all four grids of the tiny city.
    grids = [p.get("data-code") for p in root.iter(f"{SVG}path") if p.get("class") == "grid"]
    assert grids == ["430223001001001", "430223001001002", "430223001002001", "430223001002002"]
    assert [p for p in root.iter(f"{SVG}path") if p.get("class") == "affected"]
    point = next(c for c in root.iter(f"{SVG}circle") if c.get("class") == "incident-point")
    px, py = float(point.get("cx")), float(point.get("cy"))
    assert 0 < px < 800 and 0 < py < 560
    names = {g.find(f"{SVG}text").text: g.find(f"{SVG}rect") for g in root.iter(f"{SVG}g") if g.get("class") == "resource"}
    assert set(names) == {"<泵车&1号>", "城东仓库沙袋"}
    assert "&lt;泵车&amp;1号&gt;" in svg
    truck, bags = names["<泵车&1号>"], names["城东仓库沙袋"]
    # The truck stands north-east of the incident, the sandbags south-west: north is up.
    assert float(truck.get("x")) > px and float(truck.get("y")) < py
    assert float(bags.get("x")) < px and float(bags.get("y")) > py
    labels = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "grid-label"]
    assert len(labels) == 4 and all(g.endswith(label) and len(label) >= 6 for label, g in zip(labels, grids))
