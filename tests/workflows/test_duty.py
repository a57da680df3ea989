"""The duty roster (值守) on the tiny city: posts, shifts that refuse overlaps (naming the
clash), over-long or backwards or naive times and disabled users; bulk shifts all or none;
who is on duty across a shift change; a plan's notifications to a post's holder or, when
nobody holds it, to the shift leads; hand-overs and their acknowledgement; audit rows for every change."""
from __future__ import annotations

import datetime as dt

import pytest

from gis.errors import Conflict, Forbidden, Invalid, NotFound
from workflows import duty, incidents, response
from workflows.duty import NewShift
from workflows.incidents import NewIncident

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 7, 1, 0, 0, tzinfo=UTC)             # 08:00 in the city: the shift change
H = dt.timedelta(hours=1)
CHIEF = "县应急指挥长"
DRAIN = "排水抢险队长"


def audits(db, action: str) -> list[dict]:
    return db.execute("SELECT actor, entity_id, detail FROM audit_log WHERE action = %s ORDER BY id",
                      (action,)).fetchall()


@pytest.fixture
def posts(db, people):
    """Two posts; the operator holds the chief's post until 08:00, the dispatcher from then."""
    lead = people["shift_lead"]
    duty.add_post(db, CHIEF, phone="0731-1234567", actor=lead)
    duty.add_post(db, DRAIN, dept="县城市管理和综合执法局", actor=lead)
    night = duty.add_shift(db, CHIEF, people["operator"].id, T0 - 12 * H, T0, actor=lead)
    day = duty.add_shift(db, CHIEF, people["dispatcher"].id, T0, T0 + 12 * H, actor=lead)
    return {"night": night, "day": day}


def test_posts_are_made_once_and_plans_posts_ensured(db, people):
    lead = people["shift_lead"]
    made = duty.add_post(db, CHIEF, actor=lead)
    with pytest.raises(Conflict, match="already exists"):
        duty.add_post(db, CHIEF, actor=lead)
    with pytest.raises(Invalid, match="department '无此部门' does not exist"):
        duty.add_post(db, "某岗位", dept="无此部门", actor=lead)
    created = duty.ensure_posts(db, duty.plan_posts(), actor=lead)
    assert CHIEF not in created and "排水抢险队长" in created and len(created) == len(duty.plan_posts()) - 1
    assert duty.ensure_posts(db, duty.plan_posts(), actor=lead) == []
    assert [p["name"] for p in duty.list_posts(db)] == sorted(duty.plan_posts())
    rows = audits(db, "duty.post.add")
    assert len(rows) == len(duty.plan_posts()) and rows[0]["actor"] == "shift_lead"
    assert rows[0]["entity_id"] == str(made["id"])


def test_an_overlapping_shift_is_refused_naming_the_clash(db, people, posts):
    lead = people["shift_lead"]
    with pytest.raises(Conflict) as refused:
        duty.add_shift(db, CHIEF, people["leader"].id, T0 + 10 * H, T0 + 14 * H, actor=lead)
    assert f"shift {posts['day']['id']}" in str(refused.value) and "07-01 08:00–07-01 20:00" in str(refused.value)
    # Back to back is fine, and another post may run at the same time (same person too).
    duty.add_shift(db, CHIEF, people["leader"].id, T0 + 12 * H, T0 + 24 * H, actor=lead)
    duty.add_shift(db, DRAIN, people["dispatcher"].id, T0, T0 + 12 * H, actor=lead)
    assert len(audits(db, "duty.shift.add")) == 4


@pytest.mark.parametrize("starts, ends, message", [
    (T0 + 2 * H, T0 + 2 * H, "before it starts"),
    (T0, T0 + 25 * H, "at most 24 hours"),
    (T0.replace(tzinfo=None), T0 + H, "starts_at needs a time zone"),
])
def test_bad_shift_times_are_refused(db, people, posts, starts, ends, message):
    with pytest.raises(Invalid, match=message):
        duty.add_shift(db, DRAIN, people["operator"].id, starts, ends, actor=people["shift_lead"])


def test_a_missing_or_disabled_user_or_post_is_refused(db, people, posts):
    lead = people["shift_lead"]
    with pytest.raises(Invalid, match="user 999999 does not exist"):
        duty.add_shift(db, DRAIN, 999999, T0, T0 + H, actor=lead)
    db.execute("UPDATE app_user SET active = false WHERE id = %s", (people["leader"].id,))
    with pytest.raises(Invalid, match="disabled"):
        duty.add_shift(db, DRAIN, people["leader"].id, T0, T0 + H, actor=lead)
    with pytest.raises(NotFound, match="无此岗位"):
        duty.add_shift(db, "无此岗位", people["operator"].id, T0, T0 + H, actor=lead)
    assert db.execute("SELECT count(*) AS n FROM duty_shift").fetchone()["n"] == 2


def test_bulk_shifts_are_all_or_nothing(db, people, posts):
    lead = people["shift_lead"]
    week = [NewShift(DRAIN, people["operator"].id, T0 + d * 24 * H, T0 + (d + 1) * 24 * H) for d in range(3)]
    clash = NewShift(DRAIN, people["leader"].id, T0 + 30 * H, T0 + 32 * H)       # inside the second day
    with pytest.raises(Conflict, match=r"shift #4 of 4: .*none of the shifts was saved"):
        duty.add_shifts(db, [*week, clash], actor=lead)
    assert duty.roster(db, T0, T0 + 96 * H, DRAIN) == []
    assert len(audits(db, "duty.shift.add")) == 2                                  # the fixture's only
    made = duty.add_shifts(db, week, actor=lead)
    assert [s["post"] for s in made] == [DRAIN] * 3
    assert [s["starts_at"] for s in duty.roster(db, T0, T0 + 96 * H, DRAIN)] == [T0, T0 + 24 * H, T0 + 48 * H]


def test_on_duty_now_across_the_shift_change(db, people, posts):
    before = {p["post"]: p for p in duty.on_duty_now(db, T0 - H)}
    chief = before[CHIEF]
    assert chief["holder"]["user_id"] == people["operator"].id and chief["until"] == T0
    assert chief["next"]["user_id"] == people["dispatcher"].id and chief["next"]["starts_at"] == T0
    assert before[DRAIN]["holder"] is None and before[DRAIN]["next"] is None

    after = {p["post"]: p for p in duty.on_duty_now(db, T0)}                     # 08:00 sharp: the day shift
    assert after[CHIEF]["holder"]["user_id"] == people["dispatcher"].id and after[CHIEF]["until"] == T0 + 12 * H
    assert after[CHIEF]["next"] is None
    assert duty.holders(db, [CHIEF], T0 - H)[CHIEF]["user_id"] == people["operator"].id
    assert {p["post"]: p["holder"] for p in duty.on_duty_now(db, T0 + 13 * H)} == {CHIEF: None, DRAIN: None}
    with pytest.raises(Invalid, match="time zone"):
        duty.on_duty_now(db, T0.replace(tzinfo=None))


def test_a_plans_notifications_go_to_the_post_holder_or_the_shift_leads_when_unstaffed(db, people, posts, tiny_city):
    """Activating waterlogging at 09:00: the commander's post (held by the dispatcher) is told
    by name; the drainage post nobody holds is told through the shift leads, saying so."""
    inc = incidents.create(db, NewIncident("建设路积水", "自然灾害", "水旱灾害", "Ⅳ", 113.3405, 27.0005, radius_m=200),
                           people["leader"], now=T0 + H)["id"]
    response.activate(db, inc, people["leader"], now=T0 + H)
    told = db.execute("SELECT user_id, role, message FROM notification WHERE incident_id = %s ORDER BY id",
                      (inc,)).fetchall()
    to_chief = [n for n in told if n["user_id"] == people["dispatcher"].id]
    assert to_chief and all(n["role"] is None for n in to_chief)
    verify = next(n for n in told if "现场核实" in n["message"] and "新任务" in n["message"])
    assert verify["user_id"] is None and verify["role"] == "shift_lead" and "无人值班" in verify["message"]
    tasks = {t["step_id"]: t for t in response.tasks(db, inc)}
    assert tasks["verify"]["owner_user_id"] is None and tasks["verify"]["post"] == DRAIN


def test_hand_over_by_the_holder_to_the_next_one_who_acknowledges(db, people, posts):
    op, disp, lead = people["operator"], people["dispatcher"], people["shift_lead"]
    at = T0 - H / 2                                                                # the night shift's end
    with pytest.raises(Forbidden, match="only"):
        duty.hand_over(db, CHIEF, people["leader"], "无事", at=at)
    made = duty.hand_over(db, CHIEF, op, "夜间建设路积水已退，泵车2号待命", at=at)
    assert made["from_user_id"] == op.id and made["to_user_id"] == disp.id
    note = db.execute("SELECT user_id, kind, message FROM notification WHERE kind = 'duty.handover'").fetchone()
    assert note["user_id"] == disp.id and "泵车2号待命" in note["message"]

    with pytest.raises(Forbidden, match="only the one taking over"):
        duty.acknowledge_handover(db, made["id"], op, at=T0)
    acked = duty.acknowledge_handover(db, made["id"], disp, at=T0)
    assert acked["acknowledged_at"] == T0
    with pytest.raises(Conflict, match="already acknowledged"):
        duty.acknowledge_handover(db, made["id"], disp, at=T0)
    listed = duty.handovers(db, CHIEF)
    assert [(h["id"], h["from_display_name"], h["acknowledged_at"]) for h in listed] == [(made["id"], op.display_name, T0)]

    # A shift lead writes the day holder's hand-over on their behalf; no next shift: shift leads told.
    behalf = duty.hand_over(db, CHIEF, lead, "白班无异常", at=T0 + 11 * H)
    assert behalf["from_user_id"] == disp.id and behalf["to_user_id"] is None
    assert db.execute("SELECT role FROM notification WHERE kind = 'duty.handover' ORDER BY id DESC").fetchone()["role"] \
        == "shift_lead"
    with pytest.raises(Conflict, match="nobody holds"):
        duty.hand_over(db, DRAIN, lead, "无人", at=T0)
    assert [a["detail"]["on_behalf"] for a in audits(db, "duty.handover")] == [False, True]
    assert len(audits(db, "duty.handover.ack")) == 1


def test_removing_shifts_keeps_the_past_record(db, people, posts):
    lead = people["shift_lead"]
    with pytest.raises(Conflict, match="is over"):
        duty.remove_shift(db, posts["night"]["id"], actor=lead, at=T0 + H)
    assert duty.remove_shift(db, posts["day"]["id"], actor=lead, at=T0 + H) == {"id": posts["day"]["id"], "removed": True}
    assert duty.holders(db, [CHIEF], T0 + H)[CHIEF]["user_id"] is None
    with pytest.raises(NotFound):
        duty.remove_shift(db, posts["day"]["id"], actor=lead)
    assert [a["entity_id"] for a in audits(db, "duty.shift.remove")] == [str(posts["day"]["id"])]
