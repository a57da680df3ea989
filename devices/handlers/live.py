"""Live positions on the bus, at most one message per unit per second: the first fix of a
second goes out at once; a unit's later moves within that second are sent by the sweeper
once the second is over (devices.handlers.sweep), so the map never keeps a stale spot."""
from __future__ import annotations

import psycopg

from devices.handlers.chain import BatchView
from workflows.notify import LIVE_CHANNEL

# Marks the units sent and announces them, in one statement.
SEND_LIVE = (
    "WITH sent AS (UPDATE unit_state s SET live_sent_at = clock_timestamp(), live_fix_time = s.fix_time"
    " WHERE s.unit_id = ANY(%s) AND (s.live_sent_at IS NULL OR s.live_sent_at <= clock_timestamp() - interval '1 second')"
    " AND s.fix_time > coalesce(s.live_fix_time, '-infinity') RETURNING s.unit_id, s.lon, s.lat, s.fix_time, s.speed_mps)"
    " SELECT count(pg_notify(%s, json_build_object('kind', 'unit_position', 'id', unit_id, 'lon', round(lon::numeric, 6),"
    " 'lat', round(lat::numeric, 6), 't', fix_time, 'speed_mps', speed_mps)::text)) AS n FROM sent")


class LivePositions:
    name = "live"

    def handle(self, conn: psycopg.Connection, view: BatchView) -> None:
        if view.fresh:
            conn.execute(SEND_LIVE, (list(view.fresh), LIVE_CHANNEL))
