"""Live positions on the bus, at most one message per unit per second. The statement that
advances a unit's state (devices.store) announces the fix when the unit's last message is
a second old or more; a unit's later moves within that second are sent by the sweeper once
the second is over (devices.handlers.sweep), so the map never keeps a stale spot."""
from __future__ import annotations

from workflows.notify import LIVE_CHANNEL

# The message, over a row with unit_id, lon, lat, fix_time, speed_mps.
LIVE_MESSAGE = ("json_build_object('kind', 'unit_position', 'id', unit_id, 'lon', round(lon::numeric, 6),"
                " 'lat', round(lat::numeric, 6), 't', fix_time, 'speed_mps', speed_mps)::text")
DUE = "(s.live_sent_at IS NULL OR s.live_sent_at <= clock_timestamp() - interval '1 second')"

# Marks the given units sent and announces them (the sweeper's trailing positions).
SEND_LIVE = (
    f"WITH sent AS (UPDATE unit_state s SET live_sent_at = clock_timestamp(), live_fix_time = s.fix_time"
    f" WHERE s.unit_id = ANY(%s) AND {DUE} AND s.fix_time > coalesce(s.live_fix_time, '-infinity')"
    f" RETURNING s.unit_id, s.lon, s.lat, s.fix_time, s.speed_mps)"
    f" SELECT count(pg_notify('{LIVE_CHANNEL}', {LIVE_MESSAGE})) AS n FROM sent")

# Each unit's newest good fix of the batch (in the staging table) becomes its state unless the
# state is newer already (a late or redelivered fix), and is announced when the unit is due.
ADVANCE_STATES = (
    "WITH moved AS (INSERT INTO unit_state AS s (unit_id, fix_time, lon, lat, speed_mps, accuracy_m, battery_pct,"
    " device, live_sent_at, live_fix_time)"
    " SELECT DISTINCT ON (unit_id) unit_id, fix_time, lon, lat, speed_mps, accuracy_m, battery_pct, device,"
    " clock_timestamp(), fix_time FROM position_in WHERE flags = 0 ORDER BY unit_id, fix_time DESC"
    " ON CONFLICT (unit_id) DO UPDATE SET fix_time = excluded.fix_time,"
    " lon = excluded.lon, lat = excluded.lat, speed_mps = excluded.speed_mps,"
    " accuracy_m = excluded.accuracy_m, battery_pct = excluded.battery_pct, device = excluded.device,"
    f" live_sent_at = CASE WHEN {DUE} THEN clock_timestamp() ELSE s.live_sent_at END,"
    f" live_fix_time = CASE WHEN {DUE} THEN excluded.fix_time ELSE s.live_fix_time END"
    " WHERE s.fix_time < excluded.fix_time"
    " RETURNING unit_id, lon, lat, fix_time, speed_mps, live_fix_time = fix_time AS announce)"
    f" SELECT count(pg_notify('{LIVE_CHANNEL}', {LIVE_MESSAGE})) AS n FROM moved WHERE announce")
