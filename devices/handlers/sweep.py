"""What time alone decides, run every second by the ingest workers (one at a time, under an
advisory lock): alarms whose condition has lasted long enough with no new fix to show it
(offline above all), escalations, alarms whose shift has ended, and the live positions a
unit's last move of a second left unsent."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

from devices.handlers import alarms
from devices.handlers.live import SEND_LIVE
from devices.store import lock_unit_states
from gis.config import Settings

SWEEP_LOCK = 0x43475357            # pg_try_advisory_xact_lock key: one sweeper at a time
QUIET = dt.timedelta(minutes=1)     # no fix for this long: the alarm says the unit went quiet

_ON_SHIFT = "JOIN shift sh ON sh.unit_id = u.id AND sh.starts_at <= now() AND sh.ends_at > now()"
_NO_OPEN = ("NOT EXISTS (SELECT 1 FROM unit_alarm a WHERE a.unit_id = u.id AND a.kind = %(kind)s"
            " AND a.cleared_at IS NULL)")
_DUE = {
    # kind: (since, extra condition)
    "out_of_area": ("us.outside_since", "us.outside_since >= sh.starts_at AND us.outside_since <= now() - make_interval(secs => %(after)s)"),
    "stationary": ("us.anchor_since", "us.anchor_since >= sh.starts_at AND us.anchor_since <= now() - make_interval(secs => %(after)s)"),
    # greatest() skips NULL: a unit that never reported is offline since its shift began
    "offline": ("greatest(us.fix_time, sh.starts_at)",
                "greatest(us.fix_time, sh.starts_at) <= now() - make_interval(secs => %(after)s)"),
}


@dataclass
class Swept:
    raised: int = 0
    escalated: int = 0
    cleared: int = 0
    live: int = 0


class Sweeper:
    def __init__(self, settings: Settings):
        s = settings
        self.after = {"out_of_area": s.out_of_area_seconds, "stationary": s.stationary_minutes * 60,
                      "offline": s.offline_minutes * 60}
        self.escalate_after = {"out_of_area": s.out_of_area_escalate_minutes * 60,
                               "stationary": s.stationary_escalate_minutes * 60}
        self.radius_m = s.stationary_radius_m

    def sweep(self, conn: psycopg.Connection) -> Swept | None:
        """One pass in one transaction; None when another worker is sweeping."""
        with conn.transaction():
            if not conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok", (SWEEP_LOCK,)).fetchone()["ok"]:
                return None
            lock_unit_states(conn)
            done = Swept()
            done.cleared = self._clear_after_shift(conn)
            for kind in _DUE:
                done.raised += self._raise_due(conn, kind)
            done.escalated = self._escalate(conn)
            done.live = self._trailing_live(conn)
            return done

    def _clear_after_shift(self, conn: psycopg.Connection) -> int:
        rows = conn.execute(
            "SELECT a.unit_id, a.kind FROM unit_alarm a WHERE a.cleared_at IS NULL AND a.kind <> 'sos'"
            " AND NOT EXISTS (SELECT 1 FROM shift sh WHERE sh.unit_id = a.unit_id"
            " AND sh.starts_at <= now() AND sh.ends_at > now())").fetchall()
        for kind in {r["kind"] for r in rows}:
            alarms.clear_alarms(conn, [r["unit_id"] for r in rows if r["kind"] == kind], kind, "班次结束")
        return len(rows)

    def _raise_due(self, conn: psycopg.Connection, kind: str) -> int:
        since, condition = _DUE[kind]
        join = "LEFT JOIN" if kind == "offline" else "JOIN"   # a unit on shift that never reported is offline
        rows = conn.execute(
            f"SELECT u.id, u.name, sh.id AS shift_id, coalesce({since}, sh.starts_at) AS since, us.lon, us.lat,"
            f" us.fix_time, now() AS now FROM unit u {_ON_SHIFT} {join} unit_state us ON us.unit_id = u.id"
            f" WHERE u.active AND {condition} AND {_NO_OPEN}",
            {"after": self.after[kind], "kind": kind}).fetchall()
        for r in rows:
            minutes = max(1, round((r["now"] - r["since"]).total_seconds() / 60))
            quiet = r["fix_time"] is None or r["now"] - r["fix_time"] > QUIET
            alarms.raise_alarm(conn, unit_id=r["id"], kind=kind, since=r["since"], shift_id=r["shift_id"],
                               lon=r["lon"], lat=r["lat"], message=self._message(kind, r["name"], minutes, quiet),
                               detail={"by": "time"})
        return len(rows)

    def _message(self, kind: str, name: str, minutes: int, quiet: bool) -> str:
        if kind == "offline":
            return (f"{name} 已 {minutes} 分钟没有定位上报。手机定位 App 在后台时常被系统暂停或限制，"
                    f"请电话联系确认，并提醒其保持 App 在前台或关闭省电限制")
        since_last = "（此后无新定位）" if quiet else ""
        if kind == "stationary":
            return f"{name} 在 {self.radius_m:.0f} 米范围内已停留约 {minutes} 分钟{since_last}"
        return f"{name} 离开责任区已约 {minutes} 分钟{since_last}"

    def _escalate(self, conn: psycopg.Connection) -> int:
        rows = conn.execute(
            "SELECT a.id, a.unit_id, a.kind, a.since, u.name AS unit_name, u.leader_user_id, u.dept_id, now() AS now"
            " FROM unit_alarm a JOIN unit u ON u.id = a.unit_id WHERE a.cleared_at IS NULL AND a.escalated_at IS NULL"
            " AND ((a.kind = 'out_of_area' AND a.since <= now() - make_interval(secs => %s))"
            "   OR (a.kind = 'stationary' AND a.since <= now() - make_interval(secs => %s)))",
            (self.escalate_after["out_of_area"], self.escalate_after["stationary"])).fetchall()
        for r in rows:
            alarms.escalate(conn, r)
        return len(rows)

    def _trailing_live(self, conn: psycopg.Connection) -> int:
        units = [r["unit_id"] for r in conn.execute(
            "SELECT unit_id FROM unit_state WHERE fix_time > coalesce(live_fix_time, '-infinity')"
            " AND live_sent_at <= clock_timestamp() - interval '1 second' ORDER BY unit_id FOR UPDATE SKIP LOCKED")]
        if not units:
            return 0
        return conn.execute(SEND_LIVE, (units,)).fetchone()["n"]
