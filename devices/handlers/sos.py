"""SOS (求救): the panic button of OsmAnd/Traccar Client (alarm=sos), an OwnTracks point named
"SOS", or native `"sos": true`. Raised at once — with or without a shift, whatever the fix's
flags (a person pressed it; a bad position falls back to the unit's last good one) — to the
command center, the unit's leader, and every unit on duty within the radius, each of whom
gets a command on citygrid/units/{id}/cmd (through the outbox the ingest worker publishes)."""
from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter

import psycopg

from devices.fix import Fix
from devices.handlers import alarms
from devices.handlers.chain import BatchView
from devices.store import FLAG_BAD_COORDINATES
from gis.db import audit
from workflows.notify import live, notify

# An SOS older than this when it arrives (a phone uploading its backlog) is put on record,
# raised and cleared at once, rather than calling people out for something long over.
STALE_AFTER = dt.timedelta(minutes=15)
MAX_HELPERS = 20

_HELPERS = (
    "SELECT u.id, u.name, round(ST_Distance(ST_MakePoint(us.lon, us.lat)::geography,"
    " ST_MakePoint(%(lon)s, %(lat)s)::geography)) AS distance_m"
    " FROM unit_state us JOIN unit u ON u.id = us.unit_id"
    " WHERE u.active AND u.id <> %(unit)s"
    " AND EXISTS (SELECT 1 FROM shift s WHERE s.unit_id = u.id AND s.starts_at <= now() AND s.ends_at > now())"
    # a box on the plain numbers first (cheap on every unit), the exact distance on what is in it
    " AND us.lat BETWEEN %(lat)s - %(dlat)s AND %(lat)s + %(dlat)s AND us.lon BETWEEN %(lon)s - %(dlon)s AND %(lon)s + %(dlon)s"
    " AND ST_DWithin(ST_MakePoint(us.lon, us.lat)::geography, ST_MakePoint(%(lon)s, %(lat)s)::geography, %(r)s)"
    " ORDER BY 3 LIMIT %(n)s")


class Sos:
    name = "sos"

    def __init__(self, radius_m: float):
        self.radius_m = radius_m

    def handle(self, conn: psycopg.Connection, view: BatchView) -> None:
        presses = Counter(unit_id for unit_id, _, _ in view.sos)
        latest: dict[int, tuple[Fix, int]] = {}
        for unit_id, fix, flags in view.sos:
            if unit_id not in latest or fix.fix_time > latest[unit_id][0].fix_time:
                latest[unit_id] = (fix, flags)
        for unit_id, (fix, flags) in sorted(latest.items()):
            self._press(conn, view, unit_id, fix, flags, presses[unit_id])

    def _press(self, conn, view: BatchView, unit_id: int, fix: Fix, flags: int, presses: int) -> None:
        lon, lat, located = fix.lon, fix.lat, "fix"
        if flags & FLAG_BAD_COORDINATES:
            row = conn.execute("SELECT lon, lat FROM unit_state WHERE unit_id = %s", (unit_id,)).fetchone()
            lon, lat, located = (row["lon"], row["lat"], "last_good_fix") if row else (None, None, "unknown")
        unit = conn.execute("SELECT name, leader_user_id FROM unit WHERE id = %s", (unit_id,)).fetchone()
        stale = view.now - fix.fix_time > STALE_AFTER
        where = "位置不明" if lon is None else ("（定位异常，按最后可靠位置）" if located == "last_good_fix" else "")
        message = f"【SOS】{unit['name']} 发出求救{where}" + ("（补传的历史求救，已过时）" if stale else "")
        alarm_id = alarms.raise_alarm(conn, unit_id=unit_id, kind="sos", since=fix.fix_time, lon=lon, lat=lat,
                                      message=message, detail={"presses": presses, "located": located,
                                                               "device": fix.device})
        if alarm_id is None:                     # pressed again: the open alarm counts it
            conn.execute("UPDATE unit_alarm SET detail = jsonb_set(jsonb_set(detail, '{presses}',"
                         " to_jsonb(coalesce((detail->>'presses')::int, 1) + %s)), '{last_press}', to_jsonb(%s::text)),"
                         " lon = coalesce(%s, lon), lat = coalesce(%s, lat)"
                         " WHERE unit_id = %s AND kind = 'sos' AND cleared_at IS NULL",
                         (presses, fix.fix_time.isoformat(), lon, lat, unit_id))
            return
        if stale:
            alarms.clear_alarms(conn, [unit_id], "sos", "补传的历史求救")
            return
        if unit["leader_user_id"] is not None:
            notify(conn, kind="unit_alarm.sos", user_id=unit["leader_user_id"], message=message)
        helpers = [] if lon is None else conn.execute(
            _HELPERS, {"lon": lon, "lat": lat, "unit": unit_id, "r": self.radius_m, "n": MAX_HELPERS,
                       "dlat": self.radius_m / 110_000,
                       "dlon": self.radius_m / (110_000 * max(0.01, math.cos(math.radians(lat))))}).fetchall()
        for h in helpers:
            payload = {"cmd": "sos_assist", "alarm_id": alarm_id, "unit_id": unit_id, "unit_name": unit["name"],
                       "lon": lon, "lat": lat, "distance_m": float(h["distance_m"]), "at": fix.fix_time.isoformat(),
                       "message": f"附近 {float(h['distance_m']):.0f} 米处 {unit['name']} 发出 SOS 求救，请立即前往支援"}
            command_id = conn.execute(
                "INSERT INTO unit_command (unit_id, kind, payload, alarm_id) VALUES (%s, 'sos_assist', %s, %s)"
                " RETURNING id", (h["id"], json.dumps(payload, ensure_ascii=False), alarm_id)).fetchone()["id"]
            live(conn, "unit_command", command_id)
        conn.execute("UPDATE unit_alarm SET detail = detail || %s WHERE id = %s",
                     (json.dumps({"helpers": [{"unit_id": h["id"], "name": h["name"],
                                               "distance_m": float(h["distance_m"])} for h in helpers]},
                                 ensure_ascii=False), alarm_id))
        audit(conn, actor=alarms.ACTOR, action="unit_alarm.sos_assist", entity="unit_alarm", entity_id=str(alarm_id),
              detail={"helpers": [h["id"] for h in helpers], "radius_m": self.radius_m})
