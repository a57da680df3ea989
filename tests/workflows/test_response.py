"""The response enforces its plan: steps become tasks owned by the posts' holders with
deadlines from activation; dependencies hold tasks back; overdue tasks escalate once to the
commander and the on-duty leader (and survive a restart, being rows); the incident does not
close while a mandatory task is open unless waived with a reason; an upgrade adds the new
level's tasks; two commanders acting at once: one wins, the other gets 409."""
from __future__ import annotations

import datetime as dt
import threading

import pytest

from gis.db import connect
from gis.errors import Conflict, Forbidden, Invalid
from tests.workflows.conftest import EMERGENCY_T0
from workflows import dispatch, incidents, response
from workflows.incidents import NewIncident
from workflows.resources import NewResource, add_resource, update_resource
from workflows.timers import TimerLoop

T0 = EMERGENCY_T0
AT = (113.3405, 27.0005)


def flood(db, actor, level="Ⅳ", drill=False):
    made = incidents.create(db, NewIncident("建设路积水", "自然灾害", "水旱灾害", level, *AT, radius_m=300,
                                            drill=drill, details={"depth": "35"}), actor, now=T0)
    return made["id"]


def by_step(db, incident_id):
    return {t["step_id"]: t for t in response.tasks(db, incident_id)}


def test_activation_makes_tasks_with_owners_deadlines_and_dependencies(db, crew):
    inc = flood(db, crew["cmdr"])
    result = response.activate(db, inc, crew["cmdr"], now=T0)
    assert result == {"plan_id": "waterlogging", "plan_version": 1, "levels": ["Ⅳ"], "tasks": 4}
    tasks = by_step(db, inc)
    assert set(tasks) == {"verify", "pumps", "traffic_control", "inform"}
    assert tasks["verify"]["owner_user_id"] == crew["drainer"].id and tasks["verify"]["post"] == "排水抢险队长"
    assert tasks["verify"]["due_at"] == T0 + dt.timedelta(minutes=15)
    assert tasks["verify"]["status"] == "open" and tasks["pumps"]["status"] == "blocked"
    assert tasks["inform"]["mandatory"] is False
    assert [c["item"] for c in tasks["verify"]["checklist"]] == ["确认积水点位", "测量积水深度", "拍照回传"]
    state = incidents.get(db, inc, crew["cmdr"])
    assert state["status"] == "responding" and state["verified_at"] == T0
    # The owners and the notified roles are told.
    told = {(r["user_id"], r["kind"]) for r in db.execute("SELECT user_id, kind FROM notification WHERE incident_id = %s",
                                                           (inc,))}
    assert (crew["drainer"].id, "incident.task") in told and (crew["cmdr"].id, "incident.task") in told
    kinds = [e["kind"] for e in incidents.events(db, inc)]
    assert kinds.count("task.created") == 4 and "activated" in kinds
    assert db.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'plan.activate'").fetchone()["n"] == 1
    with pytest.raises(Conflict, match="already in force"):
        response.activate(db, inc, crew["cmdr"], now=T0)


def test_dependencies_hold_tasks_back_until_done(db, crew):
    inc = flood(db, crew["cmdr"])
    response.activate(db, inc, crew["cmdr"], now=T0)
    tasks = by_step(db, inc)
    with pytest.raises(Conflict, match="waits for verify"):
        response.act_on_task(db, tasks["pumps"]["id"], "done", crew["drainer"], now=T0)
    with pytest.raises(Forbidden):          # not the owner, not a commander
        response.act_on_task(db, tasks["verify"]["id"], "done", crew["traffic"], now=T0)
    with pytest.raises(Invalid, match="checklist is not complete"):
        response.act_on_task(db, tasks["verify"]["id"], "done", crew["drainer"], now=T0)
    response.act_on_task(db, tasks["verify"]["id"], "check", crew["drainer"], checklist=[True, True, True], now=T0)
    response.act_on_task(db, tasks["verify"]["id"], "done", crew["drainer"], now=T0 + dt.timedelta(minutes=9))
    tasks = by_step(db, inc)
    assert tasks["verify"]["status"] == "done"
    assert {tasks[s]["status"] for s in ("pumps", "traffic_control", "inform")} == {"open"}
    told = db.execute("SELECT message FROM notification WHERE user_id = %s AND message LIKE %s",
                      (crew["traffic"].id, "%可以开始%")).fetchall()
    assert len(told) == 1


def test_overdue_tasks_escalate_once_to_commander_and_duty_leader(db, crew):
    inc = flood(db, crew["cmdr"])
    response.activate(db, inc, crew["cmdr"], now=T0)
    assert response.fire_due(db, now=T0 + dt.timedelta(minutes=14)) == 0
    assert response.fire_due(db, now=T0 + dt.timedelta(minutes=16)) == 1           # verify, due at 15
    assert response.fire_due(db, now=T0 + dt.timedelta(minutes=17)) == 0           # once
    told = db.execute("SELECT user_id FROM notification WHERE kind = 'incident.escalation' AND incident_id = %s",
                      (inc,)).fetchall()
    assert {r["user_id"] for r in told} == {crew["cmdr"].id, crew["dutylead"].id, crew["drainer"].id}
    entry = [e for e in incidents.events(db, inc) if e["kind"] == "task.escalated"]
    assert len(entry) == 1 and "县应急指挥长" in entry[0]["message"] and "县城管局带班领导" in entry[0]["message"]
    assert by_step(db, inc)["verify"]["escalated_at"] == T0 + dt.timedelta(minutes=16)


def test_a_restart_loses_no_deadline(db_url, db, crew):
    """Deadlines are rows: a timer loop started after the deadlines passed (a server that was
    down) escalates every one of them."""
    inc = flood(db, crew["cmdr"])
    response.activate(db, inc, crew["cmdr"], now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2))
    loop = TimerLoop(lambda: connect(db_url), interval=0.05)
    loop.start()
    try:
        for _ in range(200):
            left = db.execute("SELECT count(*) AS n FROM incident_task WHERE incident_id = %s AND escalated_at IS NULL",
                              (inc,)).fetchone()["n"]
            if left == 0:
                break
            threading.Event().wait(0.05)
    finally:
        loop.stop()
    assert left == 0
    assert len([e for e in incidents.events(db, inc) if e["kind"] == "task.escalated"]) == 4


def test_closing_needs_every_mandatory_task_done_or_waived_with_a_reason(db, crew):
    inc = flood(db, crew["cmdr"])
    response.activate(db, inc, crew["cmdr"], now=T0)
    tasks = by_step(db, inc)
    with pytest.raises(Conflict, match="3 mandatory task"):
        response.close(db, inc, crew["cmdr"], now=T0)
    response.act_on_task(db, tasks["verify"]["id"], "done", crew["drainer"], note="照片已回传", now=T0)
    response.act_on_task(db, tasks["pumps"]["id"], "done", crew["drainer"], now=T0)
    with pytest.raises(Forbidden):
        response.act_on_task(db, tasks["traffic_control"]["id"], "waive", crew["traffic"], note="积水已退")
    with pytest.raises(Invalid, match="written reason"):
        response.act_on_task(db, tasks["traffic_control"]["id"], "waive", crew["cmdr"], note="")
    response.act_on_task(db, tasks["traffic_control"]["id"], "waive", crew["cmdr"], note="积水已退，无需交通管制", now=T0)
    response.close(db, inc, crew["cmdr"], now=T0 + dt.timedelta(hours=1))
    tasks = by_step(db, inc)
    assert tasks["traffic_control"]["status"] == "waived" and tasks["traffic_control"]["waived_by"] == "cmdr"
    assert tasks["inform"]["status"] == "cancelled"                  # optional, open at close
    assert incidents.get(db, inc, crew["cmdr"])["status"] == "closed"
    waiver = [e for e in incidents.events(db, inc) if e["kind"] == "task.waive"][0]
    assert "积水已退，无需交通管制" in waiver["message"]


def test_an_upgrade_adds_the_higher_levels_tasks(db, crew):
    inc = flood(db, crew["cmdr"])
    response.activate(db, inc, crew["cmdr"], now=T0)
    with pytest.raises(Invalid, match="reason"):
        response.change_level(db, inc, "Ⅲ", "", crew["cmdr"])
    later = T0 + dt.timedelta(minutes=20)
    changed = response.change_level(db, inc, "Ⅲ", "低洼小区进水，2人被困", crew["cmdr"], now=later)
    assert changed["upgraded"] and changed["activations"][0]["levels"] == ["Ⅲ"]
    tasks = by_step(db, inc)
    assert {"rescue_trapped", "sandbag_line", "shelter_open"} <= set(tasks)
    assert tasks["rescue_trapped"]["due_at"] == later + dt.timedelta(minutes=30)
    assert tasks["rescue_trapped"]["status"] == "blocked"            # depends on verify, still open
    level = [e for e in incidents.events(db, inc) if e["kind"] == "level"][0]
    assert "低洼小区进水" in level["message"]


def test_two_commanders_on_one_task_one_wins_one_gets_409(db_url, db, crew):
    inc = flood(db, crew["cmdr"])
    response.activate(db, inc, crew["cmdr"], now=T0)
    task = by_step(db, inc)["verify"]
    barrier = threading.Barrier(2)
    results = []

    def act(who, action, note):
        with connect(db_url) as conn:
            barrier.wait()
            try:
                response.act_on_task(conn, task["id"], action, who, note=note, expected_version=task["version"])
                results.append("ok")
            except Conflict as e:
                results.append(str(e))

    threads = [threading.Thread(target=act, args=(crew["cmdr"], "waive", "现场已核实无积水")),
               threading.Thread(target=act, args=(crew["cmdr2"], "done", "已核实"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r == "ok" for r in results) == [False, True]
    assert "reload it" in next(r for r in results if r != "ok")
    assert db.execute("SELECT version FROM incident_task WHERE id = %s", (task["id"],)).fetchone()["version"] == 2


def test_dispatch_draws_stock_and_assigns_and_release_returns(db, crew):
    inc = flood(db, crew["cmdr"])
    response.activate(db, inc, crew["cmdr"], now=T0)
    truck = add_resource(db, NewResource("泵车1号", "pump_truck", 113.3410, 27.0005), actor="test")["id"]
    bags = add_resource(db, NewResource("城东仓库沙袋", "sandbags", 113.3420, 27.0005, quantity=1000), actor="test")["id"]
    pumps = by_step(db, inc)["pumps"]["id"]
    near = dispatch.suggest(db, inc, pumps)
    assert [n["type"] for n in near] == ["pump_truck", "mobile_pump", "drainage_team"]
    assert near[0]["nearest"][0]["id"] == truck and near[0]["count"] == 2
    order = dispatch.dispatch(db, inc, truck, crew["cmdr"], task_id=pumps, now=T0)
    assert db.execute("SELECT status FROM resource WHERE id = %s", (truck,)).fetchone()["status"] == "assigned"
    with pytest.raises(Conflict, match="not available"):
        dispatch.dispatch(db, inc, truck, crew["cmdr"], now=T0)
    dispatch.dispatch(db, inc, bags, crew["cmdr"], quantity=300, now=T0)
    assert db.execute("SELECT quantity FROM resource WHERE id = %s", (bags,)).fetchone()["quantity"] == 700
    with pytest.raises(Conflict, match="has 700"):
        dispatch.dispatch(db, inc, bags, crew["cmdr"], quantity=800, now=T0)
    # A restock (入库) read from a form showing 1000 adds to the 700 left, not back to 1000 + 200.
    update_resource(db, bags, {"restock": 200}, actor="test")
    assert db.execute("SELECT quantity FROM resource WHERE id = %s", (bags,)).fetchone()["quantity"] == 900
    assert db.execute("SELECT action, detail FROM audit_log WHERE entity = 'resource' AND entity_id = %s"
                      " ORDER BY id DESC LIMIT 1", (str(bags),)).fetchone() == {
        "action": "resource.restock", "detail": {"name": "城东仓库沙袋", "from": 700, "to": 900, "amount": 200}}
    # Nobody acknowledges the truck in 10 minutes: the commanders are told, once.
    assert dispatch.fire_due(db, now=T0 + dt.timedelta(minutes=11)) == 2
    assert dispatch.fire_due(db, now=T0 + dt.timedelta(minutes=12)) == 0
    dispatch.update_order(db, order["id"], "acknowledge", crew["cmdr"], now=T0)
    with pytest.raises(Conflict):
        dispatch.update_order(db, order["id"], "acknowledge", crew["cmdr"], now=T0)
    dispatch.update_order(db, order["id"], "release", crew["cmdr"], now=T0)
    assert db.execute("SELECT status FROM resource WHERE id = %s", (truck,)).fetchone()["status"] == "available"
    kinds = [e["kind"] for e in incidents.events(db, inc)]
    assert kinds.count("dispatch") == 2 and "dispatch.escalated" in kinds and "dispatch.release" in kinds


def test_a_point_outside_the_jurisdiction_is_refused(db, crew):
    with pytest.raises(Invalid, match="outside the jurisdiction"):
        incidents.create(db, NewIncident("外地积水", "自然灾害", "水旱灾害", "Ⅳ", 113.5, 27.5), crew["cmdr"])
    with pytest.raises(Invalid, match="subtype"):
        incidents.create(db, NewIncident("积水", "自然灾害", "交通事故", "Ⅳ", *AT), crew["cmdr"])
    assert db.execute("SELECT count(*) AS n FROM incident").fetchone()["n"] == 0


def test_promoted_from_a_case_and_linked_both_ways(db, crew, new_case):
    case_id = new_case(class_code="0405", description="建设路积水没过脚踝").case["id"]      # 道路积水
    source = incidents.promotion_source(db, "case", case_id)
    assert (source["lon"], source["lat"]) == pytest.approx(AT) and source["title"].startswith("道路积水")
    made = incidents.create(db, NewIncident(source["title"], "自然灾害", "水旱灾害", "Ⅳ", source["lon"], source["lat"],
                                            links=[("case", case_id)]), crew["cmdr"])
    assert [i["id"] for i in incidents.incidents_of(db, "case", case_id)] == [made["id"]]
    assert incidents.get(db, made["id"], crew["cmdr"])["links"][0]["promoted"] is True
    with pytest.raises(Conflict, match="already linked"):
        incidents.link(db, made["id"], "case", case_id, crew["cmdr"])


def test_escalation_follows_the_plan_as_it_was_run(db, crew):
    """A revised plan (v2, another commander post) keeps escalating its own incidents to the
    organisation it ran with."""
    import yaml

    from workflows.plans import parse_plan
    doc = dict(response.plan_by_id("waterlogging").source, version=2)
    doc["organisation"] = dict(doc["organisation"], commander={"users": ["cmdr2"]})
    revised = parse_plan(yaml.safe_dump(doc, allow_unicode=True), "v2")
    inc = flood(db, crew["cmdr"])
    response.activate(db, inc, crew["cmdr"], plan=revised, now=T0)
    assert response.activations(db, inc)[0]["plan_version"] == 2
    response._ran.clear()                       # as after a restart: only the stored copy is left
    response.fire_due(db, now=T0 + dt.timedelta(minutes=16))
    told = {r["user_id"] for r in db.execute("SELECT user_id FROM notification WHERE kind = 'incident.escalation'")}
    assert crew["cmdr2"].id in told and crew["cmdr"].id not in told


# ---------------------------------------------------------------- two plans, reopening, who was told

def accident(db, actor, level="Ⅳ"):
    """A road collapse that broke a gas main: both road_collapse and gas_leak cover it."""
    made = incidents.create(db, NewIncident("建设路路面塌陷燃气管破损", "事故灾难", "公共设施和设备事故", level, *AT,
                                            radius_m=100), actor, now=T0)
    return made["id"]


def by_plan_step(db, incident_id):
    return {(t["plan_id"], t["step_id"]): t for t in response.tasks(db, incident_id)}


def test_two_plans_on_one_incident_each_keep_their_own_steps_and_dependencies(db, crew):
    inc = accident(db, crew["cmdr"])
    response.activate(db, inc, crew["cmdr"], plan_id="road_collapse", now=T0)
    road_verify = by_plan_step(db, inc)[("road_collapse", "verify")]["id"]
    response.act_on_task(db, road_verify, "done", crew["cmdr"], note="塌陷约4平方米", now=T0)
    made = response.activate(db, inc, crew["cmdr"], plan_id="gas_leak", now=T0)
    tasks = by_plan_step(db, inc)
    road, gas = response.plan_by_id("road_collapse"), response.plan_by_id("gas_leak")
    assert made["tasks"] == len(gas.steps_for("Ⅳ"))
    assert set(tasks) == {("road_collapse", s.id) for s in road.steps_for("Ⅳ")} | {("gas_leak", s.id)
                                                                                  for s in gas.steps_for("Ⅳ")}
    # road_collapse's verify being done does not open gas_leak's steps that wait for *its* verify.
    assert tasks[("road_collapse", "cordon")]["status"] == "open"
    assert tasks[("gas_leak", "verify")]["status"] == "open"
    assert {tasks[("gas_leak", s)]["status"] for s in ("cordon", "ignition_ban", "shut_off")} == {"blocked"}
    # Finishing gas_leak's verify opens gas_leak's dependants, and nothing of road_collapse's.
    road_before = {k: t["status"] for k, t in tasks.items() if k[0] == "road_collapse"}
    response.act_on_task(db, tasks[("gas_leak", "verify")]["id"], "done", crew["cmdr"], note="浓度未超标", now=T0)
    tasks = by_plan_step(db, inc)
    assert {tasks[("gas_leak", s)]["status"] for s in ("cordon", "ignition_ban", "shut_off", "medical_standby")} \
        == {"open"}
    assert {k: t["status"] for k, t in tasks.items() if k[0] == "road_collapse"} == road_before
    # And the other way: road_collapse's cordon done opens its traffic diversion, not gas_leak's
    # repair (which waits for gas_leak's own cordon among others).
    response.act_on_task(db, tasks[("road_collapse", "cordon")]["id"], "done", crew["cmdr"], note="围挡已设", now=T0)
    tasks = by_plan_step(db, inc)
    assert tasks[("road_collapse", "traffic_divert")]["status"] == "open"
    assert tasks[("gas_leak", "cordon")]["status"] == "open" and tasks[("gas_leak", "repair")]["status"] == "blocked"


def test_reopening_a_task_puts_its_unstarted_dependants_back_to_waiting(db, crew):
    inc = flood(db, crew["cmdr"])
    response.activate(db, inc, crew["cmdr"], now=T0)
    tasks = by_step(db, inc)
    response.act_on_task(db, tasks["verify"]["id"], "done", crew["drainer"], note="照片已回传", now=T0)
    response.act_on_task(db, tasks["pumps"]["id"], "start", crew["drainer"], now=T0)
    response.act_on_task(db, tasks["inform"]["id"], "done", crew["cmdr"], now=T0)
    response.act_on_task(db, tasks["verify"]["id"], "reopen", crew["cmdr"], note="积水点位报错", now=T0)
    tasks = by_step(db, inc)
    assert tasks["verify"]["status"] == "open"
    assert tasks["traffic_control"]["status"] == "blocked"          # not started: waits again
    assert tasks["pumps"]["status"] == "in_progress" and tasks["inform"]["status"] == "done"   # left as they are
    with pytest.raises(Conflict, match="waits for verify"):
        response.act_on_task(db, tasks["traffic_control"]["id"], "start", crew["traffic"], now=T0)
    entry = [e for e in incidents.events(db, inc) if e["kind"] == "task.reopen"][-1]
    assert "「积水路段设置围挡和警示，疏导交通」退回等待前置" in entry["message"]
    assert "调派排水抢险车和移动泵站到积水点抽排」（进行中）" in entry["message"] and "（已完成）" in entry["message"]
    told = db.execute("SELECT count(*) AS n FROM notification WHERE user_id = %s AND message LIKE %s",
                      (crew["traffic"].id, "%重新打开%")).fetchone()["n"]
    assert told == 1
    # A task reopened while what it depends on is open again waits too.
    response.act_on_task(db, tasks["pumps"]["id"], "done", crew["drainer"], now=T0)
    response.act_on_task(db, tasks["pumps"]["id"], "reopen", crew["cmdr"], now=T0)
    assert by_step(db, inc)["pumps"]["status"] == "blocked"
    # Finishing verify again opens them both.
    response.act_on_task(db, tasks["verify"]["id"], "done", crew["drainer"], note="已复核", now=T0)
    assert {by_step(db, inc)[s]["status"] for s in ("pumps", "traffic_control")} == {"open"}


def test_the_timeline_names_who_was_told(db, crew):
    inc = flood(db, crew["cmdr"])
    response.activate(db, inc, crew["cmdr"], now=T0)
    created = {e["detail"]["step"]: e["message"] for e in incidents.events(db, inc) if e["kind"] == "task.created"}
    assert "→ 排水抢险队长（drainer）" in created["verify"] and "通知 县应急指挥长（cmdr）" in created["verify"]
    assert "通知 县应急指挥长（cmdr）、县城管局带班领导（dutylead）" in created["pumps"]
    assert "通知" not in created["traffic_control"]                   # the plan tells nobody else of it
    truck = add_resource(db, NewResource("泵车1号", "pump_truck", 113.3410, 27.0005, dept="县城市管理和综合执法局"),
                         actor="test")["id"]
    dispatch.dispatch(db, inc, truck, crew["cmdr"], now=T0)
    sent = [e["message"] for e in incidents.events(db, inc) if e["kind"] == "dispatch"]
    assert sent == ["调派 泵车1号；已通知 县城市管理和综合执法局"]
    told = db.execute("SELECT d.name FROM notification n JOIN department d ON d.id = n.dept_id"
                      " WHERE n.kind = 'incident.dispatch'").fetchall()
    assert [r["name"] for r in told] == ["县城市管理和综合执法局"]
