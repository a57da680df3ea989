"""The alarm handler chain and the sweeper against the real database: each alarm raised once,
cleared when its condition ends, with audit rows, notifications and live-bus messages."""
from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest

from devices.fix import Fix
from devices.handlers.chain import Chain
from devices.handlers.sweep import Sweeper
from devices.pipeline import new_writer
from devices.registry import add_unit
from devices.shifts import add_shift
from devices.store import Batch, Received, write
from gis.db import connect
from workflows.notify import LIVE_CHANNEL

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
T0 = NOW - dt.timedelta(hours=1)
INSIDE = (113.3405, 27.0005)          # grid 430223001001001 of the tiny city
INSIDE_2 = (113.3415, 27.0005)        # its neighbour, ~100 m east
OUTSIDE = (113.3425, 27.0005)         # ~200 m east: the next community's grid


@pytest.fixture(autouse=True)
def clock():
    """The sweeper goes by the database's clock, so each test's NOW is taken when it starts, not
    when the module was imported: in a long suite that is minutes earlier, and a unit still for
    15 minutes would have been still long enough to raise a stationary alarm too."""
    global NOW, T0
    NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    T0 = NOW - dt.timedelta(hours=1)


@pytest.fixture
def listener(settings):
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f"LISTEN {LIVE_CHANNEL}")
        yield conn


def live_messages(listener) -> list[dict]:
    return [json.loads(n.payload) for n in listener.notifies(timeout=0.3)]


def on_duty(db, name="监督员张三", *, areas=("430223001001",), kind="inspector", start=None, end=None) -> int:
    unit_id = add_unit(db, name=name, kind=kind, actor="test")
    add_shift(db, unit_id=unit_id, starts_at=start or NOW - dt.timedelta(hours=2),
              ends_at=end or NOW + dt.timedelta(hours=2), areas=list(areas), actor="test")
    return unit_id


def fix(unit_id: int, seconds: float, where: tuple[float, float], *, accuracy: float = 5.0, sos: bool = False) -> Fix:
    return Fix(device=f"unit:{unit_id}", fix_time=T0 + dt.timedelta(seconds=seconds), lon=where[0], lat=where[1],
               accuracy_m=accuracy, sos=sos)


def push(conn, writer, fixes: list[Fix]):
    batch = Batch(received_at=NOW)
    message = Received("native", "citygrid/units/x/pos", b"{}", NOW)
    batch.fixes.extend((f, message) for f in fixes)
    return write(conn, batch, writer)


def alarms(db, unit_id: int, kind: str | None = None) -> list[dict]:
    return db.execute("SELECT * FROM unit_alarm WHERE unit_id = %s AND (%s::text IS NULL OR kind = %s) ORDER BY id",
                      (unit_id, kind, kind)).fetchall()


def audit_actions(db, alarm_id: int) -> list[str]:
    return [r["action"] for r in db.execute("SELECT action FROM audit_log WHERE entity = 'unit_alarm'"
                                            " AND entity_id = %s ORDER BY id", (str(alarm_id),))]


# ---------------------------------------------------------------- out of area (越界)

def test_out_of_area_raised_once_after_the_threshold_and_cleared_on_return(db, app_conn, settings, listener):
    unit = on_duty(db)
    writer = new_writer(settings)                       # out_of_area_seconds = 120
    push(app_conn, writer, [fix(unit, 0, INSIDE), fix(unit, 10, OUTSIDE), fix(unit, 60, OUTSIDE)])
    assert alarms(db, unit) == []                        # 50 s outside: not yet
    live_messages(listener)
    push(app_conn, writer, [fix(unit, 131, OUTSIDE)])   # 121 s outside
    [alarm] = alarms(db, unit)
    assert alarm["kind"] == "out_of_area" and alarm["since"] == T0 + dt.timedelta(seconds=10)
    assert alarm["cleared_at"] is None and alarm["shift_id"] is not None
    assert "离开责任区" in alarm["message"]
    assert {"kind": "unit_alarm", "id": alarm["id"], "unit_id": unit, "alarm": "out_of_area",
            "state": "raised"} in live_messages(listener)
    assert db.execute("SELECT count(*) AS n FROM notification WHERE kind = 'unit_alarm.out_of_area'"
                      " AND role = 'shift_lead'").fetchone()["n"] == 1
    for seconds in (140, 200, 300):                      # still outside: the same alarm, not new ones
        push(app_conn, writer, [fix(unit, seconds, OUTSIDE)])
    assert len(alarms(db, unit)) == 1
    push(app_conn, writer, [fix(unit, 320, INSIDE_2)])
    [alarm] = alarms(db, unit)
    assert alarm["cleared_at"] is not None and alarm["cleared_by"] == "回到责任区"
    assert audit_actions(db, alarm["id"]) == ["unit_alarm.raise", "unit_alarm.clear"]
    assert db.execute("SELECT outside_since FROM unit_state WHERE unit_id = %s", (unit,)).fetchone()["outside_since"] is None


def test_out_and_back_within_one_batch_is_recorded(db, app_conn, settings):
    unit = on_duty(db)
    push(app_conn, new_writer(settings), [fix(unit, s, OUTSIDE) for s in range(0, 300, 30)] + [fix(unit, 300, INSIDE)])
    [alarm] = alarms(db, unit)
    assert alarm["cleared_at"] is not None and alarm["since"] == T0


def test_no_alarm_outside_a_shift_or_from_flagged_fixes(db, app_conn, settings):
    off_duty = add_unit(db, name="休班人员", kind="officer", actor="test")
    poor = on_duty(db, "定位差的人")
    writer = new_writer(settings)
    push(app_conn, writer, [fix(off_duty, s, OUTSIDE) for s in range(0, 600, 60)])
    push(app_conn, writer, [fix(poor, 0, INSIDE)] + [fix(poor, s, OUTSIDE, accuracy=500) for s in range(60, 600, 60)])
    assert alarms(db, off_duty) == [] and alarms(db, poor) == []
    assert db.execute("SELECT count(*) AS n FROM position WHERE unit_id = %s AND flags = 4",
                      (poor,)).fetchone()["n"] == 9       # kept for the record, flagged


def test_a_drawn_area_counts_like_grids(db, app_conn, settings):
    unit = add_unit(db, name="巡逻车", kind="vehicle", actor="test")
    square = {"type": "Polygon", "coordinates": [[[113.342, 27.0], [113.343, 27.0], [113.343, 27.001],
                                                  [113.342, 27.001], [113.342, 27.0]]]}
    add_shift(db, unit_id=unit, starts_at=NOW - dt.timedelta(hours=2), ends_at=NOW + dt.timedelta(hours=2),
              polygon=square, actor="test")
    push(app_conn, new_writer(settings), [fix(unit, s, OUTSIDE) for s in range(0, 600, 60)])
    assert alarms(db, unit) == []                          # OUTSIDE lies inside the drawn square


# ---------------------------------------------------------------- stationary (长时间停留)

def test_stationary_from_positions_and_cleared_when_moving(db, app_conn, settings):
    unit = on_duty(db)
    writer = new_writer(settings)                          # 30 m for 20 minutes
    jitter = [(INSIDE[0] + (i % 3) * 0.00005, INSIDE[1]) for i in range(25)]   # within ~10 m
    push(app_conn, writer, [fix(unit, i * 60, where) for i, where in enumerate(jitter[:15])])
    assert alarms(db, unit) == []                          # 14 minutes
    push(app_conn, writer, [fix(unit, i * 60, where) for i, where in enumerate(jitter) if i >= 15])
    [alarm] = alarms(db, unit)
    assert alarm["kind"] == "stationary" and alarm["since"] == T0 and alarm["cleared_at"] is None
    push(app_conn, writer, [fix(unit, 25 * 60, INSIDE_2)])  # 100 m away
    [alarm] = alarms(db, unit)
    assert alarm["cleared_by"] == "已移动"
    state = db.execute("SELECT anchor_since, anchor_lon FROM unit_state WHERE unit_id = %s", (unit,)).fetchone()
    assert state["anchor_since"] == T0 + dt.timedelta(minutes=25) and state["anchor_lon"] == INSIDE_2[0]


# ---------------------------------------------------------------- offline (离线) and the sweeper

def test_offline_raised_by_time_says_why_and_clears_on_the_next_fix(db, app_conn, settings, listener):
    unit = on_duty(db)
    silent_from_start = on_duty(db, "从未上报的人")
    writer = new_writer(settings)
    last = NOW - dt.timedelta(minutes=15)
    push(app_conn, writer, [fix(unit, (last - T0).total_seconds(), INSIDE)])
    live_messages(listener)
    swept = Sweeper(settings).sweep(app_conn)
    assert swept.raised == 2
    [alarm] = alarms(db, unit, "offline")
    assert alarm["since"] == last and "后台" in alarm["message"]
    assert alarms(db, silent_from_start, "offline")[0]["since"] == NOW - dt.timedelta(hours=2)
    assert any(m.get("alarm") == "offline" and m["state"] == "raised" for m in live_messages(listener))
    assert Sweeper(settings).sweep(app_conn).raised == 0   # once
    push(app_conn, writer, [fix(unit, 3600, INSIDE)])
    assert alarms(db, unit, "offline")[0]["cleared_by"] == "恢复上报"


def test_time_passing_raises_out_of_area_and_escalates_to_the_leader(db, app_conn, settings):
    from command.auth import create_user

    leader = create_user(db, username="zhangke", password="leader-password", role="leader", actor="test")
    unit = on_duty(db)
    db.execute("UPDATE unit SET leader_user_id = %s WHERE id = %s", (leader.id, unit))
    db.commit()
    went_out = NOW - dt.timedelta(minutes=11)
    push(app_conn, new_writer(settings), [fix(unit, (went_out - T0).total_seconds(), OUTSIDE)])
    assert alarms(db, unit, "out_of_area") == []          # one fix: not yet 120 s by the fixes
    swept = Sweeper(settings).sweep(app_conn)             # but 11 minutes have passed
    assert swept.raised >= 1 and swept.escalated == 1
    [alarm] = alarms(db, unit, "out_of_area")
    assert alarm["escalated_at"] is not None
    note = db.execute("SELECT message FROM notification WHERE user_id = %s", (leader.id,)).fetchone()
    assert "升级" in note["message"] and "越界" in note["message"]
    assert audit_actions(db, alarm["id"]) == ["unit_alarm.raise", "unit_alarm.escalate"]


def test_alarms_clear_when_the_shift_ends(db, app_conn, settings):
    unit = on_duty(db, start=NOW - dt.timedelta(hours=3), end=NOW - dt.timedelta(minutes=1))
    push(app_conn, new_writer(settings), [fix(unit, s, OUTSIDE) for s in range(0, 600, 60)])
    assert alarms(db, unit)[0]["cleared_at"] is None
    Sweeper(settings).sweep(app_conn)
    assert alarms(db, unit)[0]["cleared_by"] == "班次结束"


def test_one_sweeper_at_a_time(db, settings, app_conn):
    with connect(settings.database_url) as other, other.transaction():
        other.execute("SELECT pg_advisory_xact_lock(%s)", (0x43475357,))
        assert Sweeper(settings).sweep(app_conn) is None


# ---------------------------------------------------------------- SOS

def test_sos_calls_the_on_duty_units_nearby_and_counts_repeat_presses(db, app_conn, settings, listener):
    victim = add_unit(db, name="监督员李四", kind="inspector", actor="test")    # SOS needs no shift
    near = on_duty(db, "附近的巡逻车", kind="vehicle")
    off_duty = add_unit(db, name="休班的人", kind="officer", actor="test")
    far = on_duty(db, "远处的人")
    writer = new_writer(settings)
    push(app_conn, writer, [fix(near, 3000, INSIDE_2), fix(off_duty, 3000, INSIDE_2),
                            fix(far, 3000, (113.3405, 27.0405))])            # ~4.4 km north
    live_messages(listener)
    push(app_conn, writer, [fix(victim, 3500, INSIDE, sos=True)])
    [alarm] = alarms(db, victim)
    assert alarm["kind"] == "sos" and alarm["lon"] == INSIDE[0]
    assert [h["unit_id"] for h in alarm["detail"]["helpers"]] == [near]
    [command] = db.execute("SELECT * FROM unit_command").fetchall()
    assert command["unit_id"] == near and command["payload"]["cmd"] == "sos_assist"
    assert command["payload"]["alarm_id"] == alarm["id"] and 90 < command["payload"]["distance_m"] < 110
    kinds = [m["kind"] for m in live_messages(listener)]
    assert "unit_alarm" in kinds and "unit_command" in kinds
    roles = {r["role"] for r in db.execute("SELECT role FROM notification WHERE kind = 'unit_alarm.sos'")}
    assert {"commander", "shift_lead"} <= roles
    push(app_conn, writer, [fix(victim, 3510, INSIDE, sos=True), fix(victim, 3520, INSIDE, sos=True)])
    [alarm] = alarms(db, victim)
    assert alarm["detail"]["presses"] == 3
    assert db.execute("SELECT count(*) AS n FROM unit_command").fetchone()["n"] == 1


def test_sos_with_bad_coordinates_uses_the_last_good_position(db, app_conn, settings):
    victim = add_unit(db, name="监督员王五", kind="inspector", actor="test")
    writer = new_writer(settings)
    push(app_conn, writer, [fix(victim, 0, INSIDE)])
    push(app_conn, writer, [Fix(device=f"unit:{victim}", fix_time=T0 + dt.timedelta(seconds=60), lon=0.0, lat=0.0,
                                sos=True)])
    [alarm] = alarms(db, victim)
    assert (alarm["lon"], alarm["lat"]) == INSIDE and alarm["detail"]["located"] == "last_good_fix"


# ---------------------------------------------------------------- live positions and isolation

def test_live_positions_at_most_one_per_unit_per_second_and_the_last_is_not_lost(db, app_conn, settings, listener):
    unit = on_duty(db)
    writer = new_writer(settings)
    live_messages(listener)
    push(app_conn, writer, [fix(unit, s, INSIDE) for s in range(5)])
    push(app_conn, writer, [fix(unit, 5, INSIDE_2)])         # the same wall-clock second
    sent = [m for m in live_messages(listener) if m["kind"] == "unit_position"]
    assert len(sent) == 1 and sent[0]["id"] == unit
    db.execute("UPDATE unit_state SET live_sent_at = live_sent_at - interval '2 seconds'")
    db.commit()
    assert Sweeper(settings).sweep(app_conn).live == 1      # the trailing move goes out after the second
    [trailing] = [m for m in live_messages(listener) if m["kind"] == "unit_position"]
    assert trailing["lon"] == INSIDE_2[0]


class Broken:
    name = "broken"

    def handle(self, conn, view):
        conn.execute("INSERT INTO unit_alarm (unit_id, kind, since, raised_at, message) VALUES (%s, 'sos', now(),"
                     " now(), 'half-written')", (next(iter(view.fresh)),))
        raise RuntimeError("a bug in a handler")


def test_a_failing_handler_is_isolated(db, app_conn, settings):
    unit = on_duty(db)
    writer = new_writer(settings)
    writer.chain = Chain([Broken(), *writer.chain.handlers])
    push(app_conn, writer, [fix(unit, s, OUTSIDE) for s in range(0, 600, 60)])
    assert writer.chain.errors == {"broken": 1}
    assert [a["kind"] for a in alarms(db, unit)] == ["out_of_area"]   # its half-write rolled back, the rest ran
    assert db.execute("SELECT count(*) AS n FROM position WHERE unit_id = %s", (unit,)).fetchone()["n"] == 10


def test_an_sos_in_the_same_second_as_a_stored_fix_still_counts_once(db, app_conn, settings):
    unit = add_unit(db, name="监督员赵六", kind="inspector", actor="test")
    writer = new_writer(settings)
    push(app_conn, writer, [fix(unit, 0, INSIDE)])
    written = push(app_conn, writer, [fix(unit, 0, INSIDE, sos=True)])      # same device, same second
    assert len(written.stored) == 1 and [a["kind"] for a in alarms(db, unit)] == ["sos"]
    again = push(app_conn, writer, [fix(unit, 0, INSIDE, sos=True)])        # the broker delivers it again
    assert again.stored == [] and again.duplicates == 1
    assert alarms(db, unit)[0]["detail"]["presses"] == 1


def test_whole_and_fractional_numbers_in_one_batch(db, app_conn, settings):
    first, second = on_duty(db, "甲"), on_duty(db, "乙")
    push(app_conn, new_writer(settings), [
        Fix(device=f"unit:{first}", fix_time=T0, lon=113, lat=27, battery_pct=55, speed_mps=1, accuracy_m=5),
        Fix(device=f"unit:{second}", fix_time=T0, lon=113.3405, lat=27.0005, battery_pct=55.5, speed_mps=1.2,
            accuracy_m=4.5)])
    assert db.execute("SELECT count(*) AS n FROM unit_state").fetchone()["n"] == 2
