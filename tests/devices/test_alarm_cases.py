"""A finished case settles the device alarm that opened it — if the device agrees: a cleared
alarm is acknowledged by the closing, an alarm the device no longer supports is cleared by the
case (and the rule starts afresh), an alarm the device still reports stays and is flagged."""
from __future__ import annotations

import pytest

from devices import alarm_cases
from devices.device_registry import NewDevice, add_device, set_rule_overrides
from devices.telemetry_store import TelemetryWriter
from tests.devices.test_telemetry_store import at, push
from tests.workflows.conftest import desk, people, photo  # noqa: F401 (fixtures)
from workflows.case_rules import ActionRequest
from workflows.cases import CaseDesk, act

COVER = "4302230101000001"


@pytest.fixture
def alarm_desk(desk):  # noqa: F811
    """The case desk as the app builds it: finishing a case settles its device alarm."""
    return CaseDesk(desk.flow, desk.calendar, [alarm_cases.case_finished])


@pytest.fixture
def writer(alarm_desk):
    return TelemetryWriter(desk=alarm_desk)


def _alarm(db, rule_id: str) -> dict:
    return db.execute("SELECT * FROM device_alarm WHERE rule_id = %s ORDER BY id DESC LIMIT 1", (rule_id,)).fetchone()


def _comments(db, alarm_id: int) -> list[str]:
    return [r["body"] for r in db.execute("SELECT body FROM device_alarm_comment WHERE alarm_id = %s ORDER BY id",
                                          (alarm_id,))]


def test_closing_the_case_of_an_alarm_the_device_cleared_acknowledges_it(db, app_conn, alarm_desk, people, photo,  # noqa: F811
                                                                       writer):
    add_device(db, NewDevice("MC-1", "manhole_cover", part_id=COVER), actor="test")
    push(app_conn, writer, ("MC-1", {"ts": at(-60), "values": {"open": True}}))
    alarm = _alarm(db, "cover_open")
    case_id = alarm["case_id"]
    push(app_conn, writer, ("MC-1", {"ts": at(-30), "values": {"open": False}}))      # the new cover is on
    assert _alarm(db, "cover_open")["status"] == "cleared_unack"
    inspector, dept = people["inspector"], people["water_dept"]
    act(db, alarm_desk, case_id, "confirm", inspector)
    act(db, alarm_desk, case_id, "file", people["operator"])
    act(db, alarm_desk, case_id, "dispatch", people["dispatcher"], ActionRequest(dept_id=dept.dept_id))
    act(db, alarm_desk, case_id, "accept", dept)
    act(db, alarm_desk, case_id, "handle", dept, photos=[photo("after")])
    act(db, alarm_desk, case_id, "send_check", people["operator"])
    act(db, alarm_desk, case_id, "check_pass", inspector, photos=[photo("after")])
    case = act(db, alarm_desk, case_id, "close", people["shift_lead"])
    after = _alarm(db, "cover_open")
    assert (after["status"], after["acked_by"]) == ("cleared", "shift_lead")
    assert _comments(db, alarm["id"]) == [f"案卷 {case['case_no']} 已结案，告警已由设备恢复，随案卷确认"]
    assert db.execute("SELECT count(*) AS n FROM audit_log WHERE entity = 'device_alarm' AND action = 'device_alarm.ack'"
                      " AND actor = 'shift_lead'").fetchone()["n"] == 1


def test_an_alarm_the_device_no_longer_supports_is_cleared_by_the_case_and_can_come_back(db, app_conn, alarm_desk, people,  # noqa: F811
                                                                                        writer):
    add_device(db, NewDevice("WL-1", "waterlogging_gauge", 113.3405, 27.0005), actor="test")
    set_rule_overrides(db, "WL-1", {"waterlogged": {"for_s": 0}}, actor="test")
    push(app_conn, writer, ("WL-1", {"ts": at(-90), "values": {"depth_cm": 20}}))
    push(app_conn, writer, ("WL-1", {"ts": at(-60), "values": {"depth_cm": 12}}))     # below 15, above the 10 that clears
    alarm = _alarm(db, "waterlogged")
    assert alarm["status"] == "active_unack"
    case = act(db, alarm_desk, alarm["case_id"], "void", people["shift_lead"], ActionRequest(note="排水已疏通"))
    after = _alarm(db, "waterlogged")
    assert (after["status"], after["cleared_by"], after["acked_by"]) == ("cleared", f"case:{case['case_no']}",
                                                                         "shift_lead")
    assert "设备最新读数已不满足告警条件" in _comments(db, alarm["id"])[0]
    push(app_conn, writer, ("WL-1", {"ts": at(-30), "values": {"depth_cm": 22}}))     # it floods again
    again = _alarm(db, "waterlogged")
    assert again["id"] != alarm["id"] and again["status"] == "active_unack" and again["case_id"] != alarm["case_id"]


def test_an_alarm_the_device_still_reports_stays_and_the_operators_are_told(db, app_conn, alarm_desk, people,  # noqa: F811
                                                                          writer):
    add_device(db, NewDevice("MC-1", "manhole_cover", part_id=COVER), actor="test")
    push(app_conn, writer, ("MC-1", {"ts": at(-60), "values": {"open": True}}))
    alarm = _alarm(db, "cover_open")
    act(db, alarm_desk, alarm["case_id"], "void", people["shift_lead"], ActionRequest(note="重复上报"))
    after = _alarm(db, "cover_open")
    assert after["status"] == "active_unack" and after["cleared_at"] is None
    assert db.execute("SELECT status FROM part WHERE id = %s", (COVER,)).fetchone()["status"] == "丢失"
    assert "设备仍报告该故障，告警保持" in _comments(db, alarm["id"])[0]
    told = db.execute("SELECT role, message FROM notification WHERE kind = 'device_alarm.still_active'").fetchone()
    assert told["role"] == "operator" and "MC-1" in told["message"]
