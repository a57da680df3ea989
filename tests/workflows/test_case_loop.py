"""The closed loop 上报 → 立案 → 派遣 → 处置 → 核查 → 结案, with clocks in working time."""
from __future__ import annotations

import datetime as dt
import threading

import pytest

from gis.db import connect
from gis.errors import Conflict, Forbidden, Invalid, NotFound
from tests.workflows.conftest import CST, MONDAY_10AM
from workflows.case_rules import ActionRequest
from workflows.cases import CaseFilter, act, get_case, list_cases
from workflows.timers import fire_due

H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


def at(h: int, m: int = 0, day: int = 2) -> dt.datetime:
    return dt.datetime(2026, 3, day, h, m, tzinfo=CST)


def test_inspector_report_walks_the_whole_loop(db, desk, people, new_case, photo):
    made = new_case()
    case = made.case
    assert case["state"] == "reported" and case["case_no"] == "2026030200001"
    assert case["stage"] == "立案" and case["stage_deadline"] == at(10, 15)       # 15 工作分钟
    assert case["suggested_dept_id"] == people["city_dept_id"]                     # 先属地

    cid = case["id"]
    act(db, desk, cid, "file", people["operator"], now=at(10, 5))
    c = act(db, desk, cid, "dispatch", people["dispatcher"], ActionRequest(dept_id=people["city_dept_id"]),
            now=at(10, 10))
    assert c["state"] == "dispatched"
    # 暴露垃圾: 4 工作时 from 10:10 → 12:00 is 110 min, then 14:30 + 130 min = 16:40
    assert c["handle_deadline"] == at(16, 40)
    act(db, desk, cid, "accept", people["department"], now=at(10, 20))
    with pytest.raises(Invalid, match="attach a photo of the result"):
        act(db, desk, cid, "handle", people["department"], now=at(11))
    c = act(db, desk, cid, "handle", people["department"], photos=[photo("after")], now=at(11))
    assert c["state"] == "handled" and c["timeline"][-1]["detail"]["on_time"] is True
    c = act(db, desk, cid, "send_check", people["operator"], now=at(11, 5))
    assert c["state"] == "checking" and c["assignee_id"] == people["inspector"].id and c["stage"] == "核查"
    c = act(db, desk, cid, "check_fail", people["inspector"], ActionRequest(note="垃圾未清运干净"), now=at(11, 30))
    assert c["state"] == "in_progress" and c["rework_count"] == 1 and c["handle_deadline"] == at(16, 40)
    act(db, desk, cid, "handle", people["department"], photos=[photo("after", (0, 200, 0))], now=at(15))
    act(db, desk, cid, "send_check", people["operator"], now=at(15, 5))
    with pytest.raises(Invalid, match="photo"):
        act(db, desk, cid, "check_pass", people["inspector"], now=at(15, 20))
    act(db, desk, cid, "check_pass", people["inspector"], photos=[photo("after", (0, 0, 200))], now=at(15, 20))
    c = act(db, desk, cid, "close", people["shift_lead"], now=at(15, 25))
    assert c["state"] == "closed" and c["closed_at"] == at(15, 25) and c["due"] is None
    assert [t["action"] for t in c["timeline"]] == [
        "report", "file", "dispatch", "accept", "handle", "send_check", "check_fail", "handle", "send_check",
        "check_pass", "close"]
    assert len(c["photos"]) == 3
    audits = db.execute("SELECT action FROM audit_log WHERE entity = 'case' ORDER BY id").fetchall()
    assert [a["action"] for a in audits][-1] == "case.close" and len(audits) == 11
    pending = db.execute("SELECT count(*) AS n FROM case_timer WHERE case_id = %s AND fired_at IS NULL"
                         " AND NOT cancelled", (cid,)).fetchone()["n"]
    assert pending == 0                                                   # a closed case keeps no timers


def test_illegal_transition_is_a_409_naming_state_and_options(db, desk, people, new_case):
    cid = new_case().case["id"]
    with pytest.raises(Conflict) as e:
        act(db, desk, cid, "close", people["shift_lead"])
    assert "is reported (待立案)" in str(e.value) and "file" in str(e.value) and "reject" in str(e.value)


def test_wrong_role_is_forbidden(db, desk, people, new_case):
    cid = new_case().case["id"]
    with pytest.raises(Forbidden, match="is for operator, shift_lead, not dispatcher"):
        act(db, desk, cid, "file", people["dispatcher"])


def test_department_sees_only_its_cases(db, desk, people, new_case):
    cid = new_case().case["id"]
    with pytest.raises(NotFound):
        get_case(db, desk, cid, people["department"])
    act(db, desk, cid, "file", people["operator"], now=at(10, 1))
    act(db, desk, cid, "dispatch", people["dispatcher"], ActionRequest(dept_id=people["city_dept_id"]), now=at(10, 2))
    assert get_case(db, desk, cid, people["department"])["state"] == "dispatched"
    with pytest.raises(NotFound):
        act(db, desk, cid, "accept", people["water_dept"])
    assert list_cases(db, desk, people["water_dept"], CaseFilter()) == []


def test_public_report_is_verified_by_the_grid_inspector(db, desk, people, new_case):
    made = new_case(source="public", reporter_name="张先生", reporter_phone="13800000000", description="路边垃圾")
    c = made.case
    assert c["state"] == "verifying" and c["assignee_id"] == people["inspector"].id and c["stage"] == "核实"
    assert c["stage_deadline"] == MONDAY_10AM + 30 * M                    # 核实: 30 自然分钟
    task = db.execute("SELECT kind, user_id FROM notification WHERE case_id = %s", (c["id"],)).fetchone()
    assert task == {"kind": "case.verify_task", "user_id": people["inspector"].id}
    c = act(db, desk, c["id"], "confirm", people["inspector"], now=at(10, 20))
    assert c["state"] == "reported" and c["assignee_id"] is None and c["stage"] == "立案"


def test_off_duty_inspector_hands_over_to_the_nearest_on_duty(db, desk, people, new_case):
    from command.auth import create_user
    from tests.conftest import PASSWORD

    db.execute("UPDATE app_user SET on_duty = false WHERE id = %s", (people["inspector"].id,))
    db.commit()
    near = create_user(db, username="near", password=PASSWORD, role="inspector", areas=["430223001002001"],
                       actor="test")
    create_user(db, username="far", password=PASSWORD, role="inspector", areas=["430223001002002"], actor="test")
    c = new_case(source="hotline", lon=113.3405, lat=27.0005).case
    assert c["assignee_id"] == near.id


def test_concurrent_dispatch_one_wins_one_gets_409(db, db_url, desk, people, new_case):
    cid = new_case().case["id"]
    act(db, desk, cid, "file", people["operator"], now=at(10, 1))
    db.commit()
    barrier, outcomes = threading.Barrier(2), []

    def dispatch(dept_id):
        with connect(db_url) as conn:
            barrier.wait()
            try:
                act(conn, desk, cid, "dispatch", people["dispatcher"], ActionRequest(dept_id=dept_id), now=at(10, 2))
                outcomes.append("ok")
            except Conflict as e:
                outcomes.append(str(e))

    water = db.execute("SELECT id FROM department WHERE name = '攸县自来水公司'").fetchone()["id"]
    threads = [threading.Thread(target=dispatch, args=(d,)) for d in (people["city_dept_id"], water)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes, key=len)[0] == "ok" and "is dispatched" in sorted(outcomes, key=len)[1]
    assert db.execute("SELECT count(*) AS n FROM case_transition WHERE case_id = %s AND action = 'dispatch'",
                      (cid,)).fetchone()["n"] == 1


def test_stale_version_is_refused(db, desk, people, new_case):
    c = new_case().case
    with pytest.raises(Conflict, match="changed since you opened it"):
        act(db, desk, c["id"], "file", people["operator"], ActionRequest(expected_version=c["version"] + 1))


def test_duplicates_are_flagged_and_merged_keeping_reporters_and_photos(db, desk, people, new_case, photo):
    first = new_case().case
    second = new_case(source="public", lon=113.3407, lat=27.0006, reporter_name="李女士",
                      now=MONDAY_10AM + 2 * H)
    assert [d["id"] for d in second.duplicates] == [first["id"]] and second.duplicates[0]["distance_m"] < 50
    far = new_case(lon=113.3435, lat=27.0005, now=MONDAY_10AM + 3 * H)          # ~300 m away
    assert far.duplicates == []
    later = new_case(now=MONDAY_10AM + 25 * H)                                   # after 24 h
    assert first["id"] not in [d["id"] for d in later.duplicates]
    with pytest.raises(Invalid, match="another class"):
        other = new_case(class_code="0104", now=MONDAY_10AM + 4 * H).case
        act(db, desk, other["id"], "merge", people["operator"], ActionRequest(merge_into=first["id"]))
    c = act(db, desk, second.case["id"], "merge", people["operator"], ActionRequest(merge_into=first["id"]))
    assert c["state"] == "void" and c["duplicate_of"] == first["id"]
    survivor = get_case(db, desk, first["id"], people["operator"])
    assert [r["name"] for r in survivor["reporters"]] == ["inspector", "李女士"]
    assert survivor["timeline"][-1]["action"] == "merged_in"


def test_same_part_is_a_duplicate_whatever_the_distance(db, desk, people, new_case):
    a = new_case(kind="part", class_code="0101", part_id="4302230101000001", lon=None, lat=None).case
    assert (a["lon"], a["lat"]) == pytest.approx((113.3405, 27.0005))
    b = new_case(kind="part", class_code="0101", part_id="4302230101000001", lon=113.3409, lat=27.0009,
                 now=MONDAY_10AM + 48 * H)
    assert [d["id"] for d in b.duplicates] == [a["id"]]
    assert a["suggested_dept_id"] == db.execute(
        "SELECT dept_owner_id FROM part WHERE id = '4302230101000001'").fetchone()["dept_owner_id"]   # 先属主


def test_replayed_submission_lands_once(db, desk, people, new_case):
    one = new_case(client_ref="phone-7f3a-0001")
    two = new_case(client_ref="phone-7f3a-0001")
    assert two.replayed and two.case["id"] == one.case["id"]
    assert db.execute("SELECT count(*) AS n FROM case_file").fetchone()["n"] == 1


@pytest.mark.parametrize("fields, message", [
    ({"class_code": "9999"}, "not in the catalog"),
    ({"lon": 116.4, "lat": 39.9}, "outside the jurisdiction"),
    ({"lon": float("nan")}, "not a WGS84"),
    ({"kind": "part", "class_code": "0114", "part_id": "4302230101000001"}, "is of class 0101"),
    ({"source": "pigeon"}, "source 'pigeon'"),
])
def test_bad_reports_are_refused_and_write_nothing(db, new_case, fields, message):
    with pytest.raises(Invalid, match=message):
        new_case(**fields)
    assert db.execute("SELECT (SELECT count(*) FROM case_file) + (SELECT count(*) FROM case_transition)"
                      " + (SELECT count(*) FROM case_number) AS n").fetchone()["n"] == 0


def _dispatched(db, desk, people, new_case, when=at(10)):
    cid = new_case(now=when).case["id"]
    act(db, desk, cid, "file", people["operator"], now=when)
    act(db, desk, cid, "dispatch", people["dispatcher"], ActionRequest(dept_id=people["city_dept_id"]), now=when)
    act(db, desk, cid, "accept", people["department"], now=when)
    return cid


def test_extension_moves_the_deadline_after_approval(db, desk, people, new_case):
    cid = _dispatched(db, desk, people, new_case)                      # deadline 16:30
    with pytest.raises(Invalid, match="how long the extension is"):
        act(db, desk, cid, "request_extension", people["department"], ActionRequest(note="需要挖掘机"))
    act(db, desk, cid, "request_extension", people["department"],
        ActionRequest(note="需要挖掘机", extension_kind="工作时", extension_amount=2), now=at(11))
    with pytest.raises(Invalid, match="already waiting"):
        act(db, desk, cid, "request_extension", people["department"],
            ActionRequest(note="再延", extension_kind="工作时", extension_amount=1), now=at(11))
    assert get_case(db, desk, cid, people["operator"])["handle_deadline"] == at(16, 30)
    c = act(db, desk, cid, "approve_extension", people["shift_lead"], now=at(11, 30))
    assert c["handle_deadline"] == at(9, 30, day=3)                     # 16:30 + 1 h to 17:30, then next morning
    assert c["extensions"][0]["status"] == "approved"


def test_suspension_stops_the_clock(db, desk, people, new_case):
    cid = _dispatched(db, desk, people, new_case)                      # deadline 16:30, 4 working hours
    act(db, desk, cid, "suspend", people["shift_lead"], ActionRequest(note="等待管线单位"), now=at(11))
    c = get_case(db, desk, cid, people["operator"], now=at(17))
    assert c["state"] == "suspended" and c["due"] == "paused"
    assert fire_due(db, now=at(23)) == 0                               # nothing fires while suspended
    c = act(db, desk, cid, "resume", people["shift_lead"], now=at(9, day=4))
    # 3 working hours were left at 11:00 (12:00, then 14:30–16:30): from Wed 9:00 → 12:00
    assert c["state"] == "in_progress" and c["handle_deadline"] == at(12, day=4)


def test_return_goes_back_to_the_dispatcher(db, desk, people, new_case):
    cid = _dispatched(db, desk, people, new_case)
    with pytest.raises(Invalid, match="note"):
        act(db, desk, cid, "return", people["department"])
    c = act(db, desk, cid, "return", people["department"], ActionRequest(note="不属于本部门"), now=at(11))
    assert c["state"] == "filed" and c["dept_id"] is None and c["return_count"] == 1 and c["stage"] == "派遣"
    n = db.execute("SELECT role FROM notification WHERE kind = 'case.returned' AND case_id = %s", (cid,)).fetchone()
    assert n["role"] == "dispatcher"


def test_timers_warn_then_escalate_once_each(db, desk, people, new_case):
    cid = _dispatched(db, desk, people, new_case)      # handling 10:00 → 16:30; 80 % (192 min) at 15:42
    assert fire_due(db, now=at(15, 41)) == 0
    fired = fire_due(db, now=at(15, 42))
    kinds = {r["kind"] for r in db.execute("SELECT kind FROM notification WHERE case_id = %s", (cid,)).fetchall()}
    assert fired == 1 and "case.handle_warn" in kinds and "case.handle_due" not in kinds
    assert get_case(db, desk, cid, people["operator"], now=at(15, 43))["due"] == "yellow"
    assert fire_due(db, now=at(16, 31)) == 1
    escalated = db.execute("SELECT role, dept_id FROM notification WHERE case_id = %s AND kind = 'case.handle_due'",
                           (cid,)).fetchall()
    assert {(e["role"], e["dept_id"]) for e in escalated} == {(None, people["city_dept_id"]), ("shift_lead", None)}
    assert fire_due(db, now=at(18)) == 0                                # fired once, not again
    assert get_case(db, desk, cid, people["operator"], now=at(18))["due"] == "red"
    assert get_case(db, desk, cid, people["operator"], now=at(18))["timeline"][-1]["action"] == "escalate"


def test_timers_survive_a_restart(db, db_url, desk, people, new_case):
    """Nothing about a deadline lives in memory: a fresh process (new connection, new desk)
    fires what the old one armed."""
    from workflows.cases import CaseDesk

    new_case()                                  # 立案 stage: due 10:15
    db.commit()
    with connect(db_url) as fresh:
        CaseDesk.default()
        assert fire_due(fresh, now=at(12)) == 2      # the warning and the overdue escalation


def test_list_filters_and_due_colours(db, desk, people, new_case):
    a = new_case().case
    b = new_case(lon=113.3425, lat=27.0005).case
    act(db, desk, b["id"], "file", people["operator"], now=at(10, 1))
    rows = list_cases(db, desk, people["operator"], CaseFilter(states=["filed"]), now=at(10, 5))
    assert [r["id"] for r in rows] == [b["id"]] and rows[0]["due"] == "green"
    red = list_cases(db, desk, people["operator"], CaseFilter(due="red"), now=at(11))
    assert {r["id"] for r in red} == {a["id"], b["id"]}
    assert [r["id"] for r in list_cases(db, desk, people["operator"], CaseFilter(area="430223001002"))] == [b["id"]]
    assert [r["id"] for r in list_cases(db, desk, people["inspector"], CaseFilter())] == [b["id"], a["id"]]
    with pytest.raises(Invalid, match="unknown state"):
        list_cases(db, desk, people["operator"], CaseFilter(states=["lost"]))
