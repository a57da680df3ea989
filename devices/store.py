"""Write one batch of received messages in one transaction: the fixes (flagged, each once),
the refused messages with their reasons, and what the handler chain makes of the new fixes.

Idempotent: a message delivered twice (QoS 1 redelivery, a worker killed before its
acknowledgement) finds its fixes already stored on (device, fix_time), and the handlers
only ever see fixes that were new in this transaction."""
from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, field

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row

from devices import partitions
from devices.fix import CommandAnswer, DecodeError, DeviceEvent, DeviceStatus, Fix, Reading
from devices.handlers.chain import BatchView
from devices.handlers.live import ADVANCE_STATES
from devices.registry import DeviceDirectory

DEAD_LETTER_KEEP_BYTES = 64 * 1024
FLAG_BAD_COORDINATES, FLAG_SPEED_JUMP, FLAG_POOR_ACCURACY = 1, 2, 4
# Farther than this from the jurisdiction's centre is not a patrol position (a phone
# reporting a cached fix from another city, a tracker's default coordinates).
FAR_AWAY_KM = 300.0
_POSITION_COLUMNS = ("device", "fix_time", "unit_id", "received_at", "lon", "lat", "accuracy_m", "altitude_m",
                     "speed_mps", "course_deg", "battery_pct", "sos", "flags")


@dataclass
class Received:
    """One message as it arrived, before decoding."""
    source: str                       # owntracks, osmand, native
    topic: str | None
    payload: bytes
    received_at: dt.datetime


@dataclass
class Refusal:
    message: Received
    reason: str
    text: str


@dataclass
class StoredFix:
    unit_id: int
    fix: Fix
    flags: int


@dataclass
class Batch:
    """Decoded messages ready to write (each fix with the message it came in)."""
    fixes: list[tuple[Fix, Received]] = field(default_factory=list)
    events: list[DeviceEvent] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    received_at: dt.datetime | None = None
    readings: list[tuple[Reading, Received]] = field(default_factory=list)    # IoT telemetry
    statuses: list[DeviceStatus] = field(default_factory=list)
    answers: list[tuple[CommandAnswer, Received]] = field(default_factory=list)      # to device commands

    def add(self, message: Received, decoded: list) -> None:
        for item in decoded:
            if isinstance(item, Fix):
                self.fixes.append((item, message))
            elif isinstance(item, Reading):
                self.readings.append((item, message))
            elif isinstance(item, DeviceStatus):
                self.statuses.append(item)
            elif isinstance(item, CommandAnswer):
                self.answers.append((item, message))
            else:
                self.events.append(item)

    def refuse(self, message: Received, error: DecodeError) -> None:
        self.refused.append(Refusal(message, error.reason, str(error)))


@dataclass
class Written:
    stored: list[StoredFix]
    duplicates: int
    dead_letters: int
    events: list[tuple[int, DeviceEvent]]
    days: set[dt.date]                      # the local days whose partitions the batch needed


@dataclass
class Limits:
    poor_accuracy_m: float
    max_speed_mps: float
    centre: tuple[float, float] | None      # (lon, lat) of the jurisdiction


@dataclass
class Writer:
    """What writing a batch needs, kept between batches by a worker."""
    limits: Limits
    directory: DeviceDirectory = field(default_factory=DeviceDirectory)
    partitions: partitions.PartitionKeeper = field(default_factory=partitions.PartitionKeeper)
    chain: object | None = None             # devices.handlers.Chain, run on the new fixes


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance (haversine), good to well under a metre at patrol scale."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 12_742_000.0 * math.asin(min(1.0, math.sqrt(a)))


def flag_fixes(fixes: list[Fix], last: dict | None, limits: Limits) -> list[int]:
    """Flags for one unit's fixes in time order, measured against the last good fix."""
    out = []
    for f in fixes:
        flags = 0
        if (abs(f.lon) < 1e-6 and abs(f.lat) < 1e-6) or (
                limits.centre and distance_m(f.lon, f.lat, *limits.centre) > FAR_AWAY_KM * 1000):
            flags |= FLAG_BAD_COORDINATES
        if f.accuracy_m is not None and f.accuracy_m > limits.poor_accuracy_m:
            flags |= FLAG_POOR_ACCURACY
        if last is not None and not flags and f.fix_time > last["fix_time"]:
            seconds = (f.fix_time - last["fix_time"]).total_seconds()
            if distance_m(last["lon"], last["lat"], f.lon, f.lat) > limits.max_speed_mps * seconds + 50:
                flags |= FLAG_SPEED_JUMP
        if not flags and (last is None or f.fix_time > last["fix_time"]):
            last = {"fix_time": f.fix_time, "lon": f.lon, "lat": f.lat}
        out.append(flags)
    return out


# Judging fixes reads and moves unit states. A batch holds fixes of thousands of units, and
# so does every other worker's: row locks taken one after another leave each writer holding
# some rows while it waits for the next (bench/bench_ingest.py, phones reporting in no
# fixed order: two workers stored 5,200 fixes/s that way). One lock around the judging,
# taken once the fixes are stored, lets the writers take turns cleanly while decoding,
# storing and the network overlap (19,700/s). The sweeper takes it too.
JUDGE_LOCK = 0x43474A44


def lock_unit_states(conn: psycopg.Connection) -> None:
    """Hold the judging lock until this transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (JUDGE_LOCK,))


def _ensure_staging(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS position_in (LIKE position) ON COMMIT DELETE ROWS")


def write(conn: psycopg.Connection, batch: Batch, writer: Writer) -> Written:
    """The whole batch in one transaction (the caller acknowledges the messages after)."""
    directory = writer.directory
    by_unit: dict[int, list[Fix]] = defaultdict(list)
    refused = list(batch.refused)
    unknown: set[int] = set()                 # messages already refused for an unknown device
    for f, message in batch.fixes:
        unit_id = directory.unit_of(conn, f.device)
        if unit_id is None:
            if id(message) not in unknown:
                unknown.add(id(message))
                refused.append(Refusal(message, "unknown_device",
                                       f"device {f.device} is not bound to any unit; register it with"
                                       " `citygrid units add … --device`"))
            continue
        by_unit[unit_id].append(f)
    events = [(u, e) for e in batch.events if (u := directory.unit_of(conn, e.device)) is not None]
    received_at = batch.received_at or dt.datetime.now(dt.timezone.utc)
    days = {partitions.local_day(f.fix_time) for fs in by_unit.values() for f in fs}
    with conn.transaction():
        # Partitions first: making one waits for the partition lock, and a transaction that
        # already read the position table (the staging table is LIKE it) while waiting would
        # block the upkeep holding that lock from creating its tables: a deadlock.
        writer.partitions.cover(conn, days)
        _ensure_staging(conn)
        # Flags are judged against the states as they were (another worker may move a unit
        # meanwhile: a speed check over a little longer time is no harm) …
        seen = _unit_states(conn, list(by_unit))
        rows = []
        for unit_id in sorted(by_unit):
            fixes = sorted(by_unit[unit_id], key=lambda f: f.fix_time)
            for f, flags in zip(fixes, flag_fixes(fixes, seen.get(unit_id), writer.limits)):
                rows.append((f.device, f.fix_time, unit_id, received_at, f.lon, f.lat, f.accuracy_m, f.altitude_m,
                             f.speed_mps, f.course_deg, f.battery_pct, f.sos, flags))
        stored = _insert_new(conn, rows, {(f.device, f.fix_time): f for fs in by_unit.values() for f in fs})
        write_dead_letters(conn, refused)
        if by_unit or events:
            # … the alarms against the states as they are, under the judging lock.
            lock_unit_states(conn)
            before = _unit_states(conn, list(by_unit), lock=True)
            if rows:
                _advance_states(conn)
            if writer.chain is not None:
                writer.chain.run(conn, _view(stored, before, events))
    if conn.info.transaction_status == TransactionStatus.IDLE:
        writer.partitions.committed(days)    # else the caller's transaction decides (and marks them)
    return Written(stored, len(rows) - len(stored), len(refused), events, days)


def _view(stored: list[StoredFix], last: dict[int, dict], events: list[tuple[int, DeviceEvent]]) -> BatchView:
    """What the handler chain sees: per unit the good fixes newer than its last one (a late,
    older fix is stored for the track but judged by nobody), who is alive, who pressed SOS."""
    fresh: dict[int, list[Fix]] = defaultdict(list)
    for s in stored:                          # in (unit, time) order
        if s.flags == 0 and (s.unit_id not in last or s.fix.fix_time > last[s.unit_id]["fix_time"]):
            fresh[s.unit_id].append(s.fix)
    return BatchView(now=dt.datetime.now(dt.timezone.utc), fresh=dict(fresh), alive={s.unit_id for s in stored},
                     sos=[(s.unit_id, s.fix, s.flags) for s in stored if s.fix.sos], events=events, before=last)


def _int_array(values: list[int]) -> str:
    """A PostgreSQL array literal of integers: thousands of ids per batch are written in
    one join instead of one adapter call each (cast it: %s::int[])."""
    return "{" + ",".join(map(str, values)) + "}"


def _unit_states(conn: psycopg.Connection, unit_ids: list[int], lock: bool = False) -> dict[int, dict]:
    """The state rows of the batch's units (their last good fix, the runs they are in);
    `lock`: for update, in unit order, as anything else that moves them does."""
    if not unit_ids:
        return {}
    rows = conn.execute("SELECT unit_id, fix_time, lon, lat, outside_since, anchor_lon, anchor_lat, anchor_since"
                        " FROM unit_state WHERE unit_id = ANY(%s::int[]) ORDER BY unit_id" + (" FOR UPDATE" if lock else ""),
                        (_int_array(unit_ids),)).fetchall()
    return {r["unit_id"]: r for r in rows}


def _insert_new(conn: psycopg.Connection, rows: list[tuple], fixes: dict) -> list[StoredFix]:
    if not rows:
        return []
    with conn.cursor(row_factory=tuple_row) as cur:     # thousands of rows: tuples, not dicts
        with cur.copy(f"COPY position_in ({', '.join(_POSITION_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        new = cur.execute(
            f"INSERT INTO position ({', '.join(_POSITION_COLUMNS)}) SELECT {', '.join(_POSITION_COLUMNS)}"
            # A fix already stored is a redelivery — unless this copy carries an SOS the stored
            # one lacks (a panic press in the same second as a routine fix): that one counts.
            " FROM position_in ON CONFLICT (device, fix_time) DO UPDATE SET sos = true"
            " WHERE excluded.sos AND NOT position.sos RETURNING device, fix_time, unit_id, flags"
        ).fetchall()
    return sorted((StoredFix(unit_id, fixes[(device, fix_time)], flags) for device, fix_time, unit_id, flags in new),
                  key=lambda s: (s.unit_id, s.fix.fix_time))


def _advance_states(conn: psycopg.Connection) -> None:
    """Unit states from the staging table, with their live-bus messages (one statement)."""
    conn.execute(ADVANCE_STATES)


def write_dead_letters(conn: psycopg.Connection, refused: list[Refusal]) -> None:
    if not refused:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO dead_letter (received_at, source, topic, payload, payload_bytes, reason, message)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(r.message.received_at, r.message.source, r.message.topic, r.message.payload[:DEAD_LETTER_KEEP_BYTES],
              len(r.message.payload), r.reason, r.text[:2000]) for r in refused])
