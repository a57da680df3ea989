"""Writing a batch of device telemetry in one transaction (the ingest worker acknowledges the
messages only after it commits):

    check each message against its device's type ──▶ COPY into the day partitions (a reading
    already stored is a no-op) ──▶ dead letters ──▶ the rules on every reading newer than the
    device's last ──▶ under the device judging lock: states written back (if nobody changed
    them meanwhile; else judged again) and alarms raised or cleared

A message with one bad reading is refused whole (dead letter with the reason), like a batch
of positions. Readings older than the device's newest are stored for the chart but judged
by nobody (a late upload must not clear today's alarm with yesterday's value)."""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

import psycopg
import orjson
from psycopg.rows import tuple_row

from devices import device_alarms, device_commands, partitions
from devices.device_types import DeviceType, types_from_db
from devices.fix import CommandAnswer, DeviceStatus, Reading
from devices.rules import Rule, Transition, evaluate, merge_overrides
from devices.store import Received, Refusal, write_dead_letters
from gis.errors import Invalid
from workflows.cases import CaseDesk

log = logging.getLogger("citygrid.telemetry")

DEVICE_JUDGE_LOCK = 0x43474456           # one judge at a time across workers (as store.JUDGE_LOCK for units)


@dataclass(frozen=True, slots=True)
class Registered:
    type: DeviceType
    rules: tuple[Rule, ...]
    part_id: str | None
    lon: float
    lat: float


class DeviceRegistry:
    """Every active device in memory (the worker checks thousands of messages a second),
    reloaded on a timer; an id it does not know is looked up on its own, so a device
    registered a moment ago is taken at once, and an unknown one is asked for at most every
    ABSENT_S (a flood of messages from an unregistered id costs no flood of queries)."""

    ABSENT_S = 5.0
    _SELECT = "SELECT id, type_code, part_id, ST_X(location) AS lon, ST_Y(location) AS lat, rules FROM device"

    def __init__(self) -> None:
        self.devices: dict[str, Registered] = {}
        self.types: dict[str, DeviceType] = {}
        # (type, heartbeat rule id) → the shortest silent_s any device of the type has for it
        # (its type's, or its own override): where the sweeper starts looking.
        self.heartbeats: dict[tuple[str, str], float] = {}
        self._absent: dict[str, float] = {}

    def load(self, conn: psycopg.Connection) -> None:
        self.types = types_from_db(conn)
        self.heartbeats = {}
        self.devices = {r["id"]: self._entry(r) for r in conn.execute(self._SELECT + " WHERE active")}
        self._absent.clear()

    def get(self, conn: psycopg.Connection, device_id: str) -> Registered | None:
        found = self.devices.get(device_id)
        if found is not None:
            return found
        if time.monotonic() - self._absent.get(device_id, float("-inf")) < self.ABSENT_S:
            return None
        row = conn.execute(self._SELECT + " WHERE id = %s AND active", (device_id,)).fetchone()
        if row is None:
            if len(self._absent) > 100_000:
                self._absent.clear()
            self._absent[device_id] = time.monotonic()
            return None
        if row["type_code"] not in self.types:
            self.types = types_from_db(conn)
        self.devices[device_id] = found = self._entry(row)
        return found

    def _entry(self, row: dict) -> Registered:
        kind = self.types[row["type_code"]]
        rules = kind.rules
        if row["rules"]:
            try:
                rules = tuple(merge_overrides(list(kind.rules), row["rules"], kind.fields, f"device {row['id']}"))
            except Invalid as e:              # checked when saved; a catalog change may break one later
                log.error("%s; judging it by its type's rules", e)
        for rule in rules:
            if rule.silent_s is not None:
                key = (kind.code, rule.id)
                self.heartbeats[key] = min(rule.silent_s, self.heartbeats.get(key, rule.silent_s))
        return Registered(kind, rules, row["part_id"], row["lon"], row["lat"])


@dataclass
class TelemetryWriter:
    registry: DeviceRegistry = field(default_factory=DeviceRegistry)
    desk: CaseDesk | None = None              # opens the cases alarm rules ask for (none: alarms only)
    errors: int = 0                           # batches whose judging failed (counted as handler errors)
    partitions: partitions.PartitionKeeper = field(default_factory=lambda: partitions.PartitionKeeper("telemetry"))


@dataclass
class TelemetryWritten:
    stored: int
    duplicates: int
    dead_letters: int
    transitions: list[tuple[str, Transition]]
    days: set[dt.date]


def problem_with(kind: DeviceType, reading: Reading) -> tuple[str, str] | None:
    """(reason, words) when a reading does not fit its device's type."""
    for name, value in reading.values.items():
        spec = kind.fields.get(name)
        if spec is None:
            return "unknown_field", (f"{kind.code} reports no field {name!r}"
                                     f" (its fields: {', '.join(kind.fields)})")
        if spec["type"] == "boolean":
            if not isinstance(value, bool):
                return "bad_type", f"{name} is true/false for a {kind.code}, got {value!r}"
        elif isinstance(value, bool):
            return "bad_type", f"{name} is a number ({spec.get('unit', '')}) for a {kind.code}, got {value!r}"
        elif not spec["min"] <= value <= spec["max"]:
            return "out_of_range", (f"{name} = {value:g} is outside {spec['min']:g}…{spec['max']:g}"
                                    f" {spec.get('unit', '')} (a faulty sensor, or a value in another unit)")
    for name, unit in (reading.units or {}).items():
        expected = kind.fields.get(name, {}).get("unit")
        if name in reading.values and unit != expected:
            return "unit_mismatch", (f"{name} is sent in {unit!r}, but a {kind.code} reports it in {expected!r}"
                                     " (convert on the device, or fix the device's configuration)")
    return None


def _ensure_staging(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS telemetry_in (LIKE telemetry) ON COMMIT DELETE ROWS")


def write_telemetry(conn: psycopg.Connection, readings: list[tuple[Reading, Received]],
                    statuses: list[DeviceStatus], writer: TelemetryWriter,
                    refused: list[Refusal] | None = None,
                    answers: list[tuple[CommandAnswer, Received]] = ()) -> TelemetryWritten:
    refused = list(refused or [])
    bad: dict[int, Refusal] = {}                 # by message: one bad reading refuses its message whole
    checked: list[tuple[Reading, Received, Registered]] = []
    for reading, message in readings:
        if id(message) in bad:
            continue
        device = writer.registry.get(conn, reading.device_id)
        problem = (("unknown_device", f"device {reading.device_id} is not registered; add it with POST /api/devices"
                    " or `citygrid devices import`") if device is None else problem_with(device.type, reading))
        if problem:
            bad[id(message)] = Refusal(message, *problem)
        else:
            checked.append((reading, message, device))
    refused += bad.values()
    good = [(r, m, d) for r, m, d in checked if id(m) not in bad]
    days = {partitions.local_day(r.ts) for r, _, _ in good}
    with conn.transaction():
        writer.partitions.cover(conn, days)        # before touching telemetry (see store.write)
        stored, seen_before = _insert_new(conn, [(r.device_id, r.ts, m.received_at, r.values) for r, m, _ in good])
        write_dead_letters(conn, refused)
        transitions = []
        if stored or statuses:
            judged = {(r.device_id, r.ts): (r, d) for r, _, d in good}      # a reading twice in a batch: once
            for key in seen_before:
                judged.pop(key, None)
            try:
                with conn.transaction():            # a savepoint: a bug in judging costs no reading
                    transitions = _judge(conn, list(judged.values()), writer.desk)
                    _statuses(conn, statuses)
            except psycopg.OperationalError:
                raise                               # the database is gone: the whole batch is retried
            except Exception:  # noqa: BLE001 - isolate the judging, keep the batch (as the handler chain does)
                writer.errors += 1
                log.exception("judging %d readings failed; they are stored but not judged", len(judged))
        if answers:
            by_answer = {id(a): m for a, m in answers}
            unfit = [Refusal(by_answer[id(a)], "unknown_command", why)
                     for a, why in device_commands.take_answers(conn, [a for a, _ in answers])]
            write_dead_letters(conn, unfit)
            refused += unfit
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        writer.partitions.committed(days)
    return TelemetryWritten(stored, len(good) - stored, len(refused), transitions, days)


def _json(value) -> str:
    """JSON text for a COPY row (orjson: a twentieth of json.dumps' time for a rule state)."""
    return orjson.dumps(value).decode()


def _insert_new(conn: psycopg.Connection, rows: list[tuple]) -> tuple[int, set[tuple]]:
    """How many readings were stored, and (device_id, ts) of those stored before (a redelivery):
    the database answers with the few old ones, not the thousands of new ones."""
    if not rows:
        return 0, set()
    _ensure_staging(conn)
    with conn.cursor(row_factory=tuple_row) as cur:
        with cur.copy("COPY telemetry_in (device_id, ts, received_at, values) FROM STDIN") as copy:
            for device_id, ts, received_at, values in rows:
                copy.write_row((device_id, ts, received_at, _json(values)))
        stored, ids, times = cur.execute(
            "WITH ins AS (INSERT INTO telemetry (device_id, ts, received_at, values)"
            "             SELECT device_id, ts, received_at, values FROM telemetry_in"
            "             ON CONFLICT (device_id, ts) DO NOTHING RETURNING device_id, ts)"
            " SELECT (SELECT count(*) FROM ins), array_agg(s.device_id), array_agg(s.ts) FROM telemetry_in s"
            " WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.device_id = s.device_id AND ins.ts = s.ts)").fetchone()
    return stored, set(zip(ids or (), times or ()))


def _judge(conn: psycopg.Connection, readings: list[tuple[Reading, Registered]],
           desk: CaseDesk | None) -> list[tuple[str, Transition]]:
    """The rules on the new readings, optimistically: the states are read and the readings
    judged with no lock held, so two workers judge side by side; then, under the judging lock,
    each state is written back only if its version is still the one read. A device another
    worker (or a finishing case) changed meanwhile is read and judged again under the lock,
    and only then are alarms raised or cleared."""
    by_device: dict[str, list[Reading]] = defaultdict(list)
    registered: dict[str, Registered] = {}
    for r, d in readings:
        by_device[r.device_id].append(r)
        registered[r.device_id] = d
    if not by_device:
        return []
    out, rows = _evaluate(by_device, registered, _read_states(conn, list(by_device)))
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (DEVICE_JUDGE_LOCK,))
    stale = _write_states(conn, rows)
    if stale:
        again = {device_id: by_device[device_id] for device_id in stale}
        out = [(device_id, t) for device_id, t in out if device_id not in again]
        out_again, rows = _evaluate(again, registered, _read_states(conn, list(again)))
        _write_states(conn, rows)                   # under the lock: nobody can have moved them on
        out += out_again
    _apply(conn, out, registered, desk)
    _heard_from(conn, registered)
    return out


def _read_states(conn: psycopg.Connection, ids: list[str]) -> dict[str, tuple]:
    """device id → (ts, values, rule state, version); a device never judged has none."""
    with conn.cursor(row_factory=tuple_row) as cur:     # thousands of rows: tuples, not dicts
        rows = cur.execute("SELECT device_id, ts, values::text, rules::text, version FROM device_state"
                           " WHERE device_id = ANY(%s::text[])", (ids,)).fetchall()
    return {device_id: (ts, orjson.loads(values), orjson.loads(rules), version)
            for device_id, ts, values, rules, version in rows}


def _evaluate(by_device: dict[str, list[Reading]], registered: dict[str, Registered],
              states: dict[str, tuple]) -> tuple[list[tuple[str, Transition]], list[tuple]]:
    """Transitions, and the state rows to write back (with the version they were judged on)."""
    out: list[tuple[str, Transition]] = []
    rows = []
    for device_id in sorted(by_device):
        last, values, rule_state, version = states.get(device_id) or (None, {}, {}, 0)
        for r in sorted(by_device[device_id], key=lambda r: r.ts):
            if last is not None and r.ts <= last:
                continue                            # late: stored for the chart, judged by nobody
            out += [(device_id, t) for t in evaluate(registered[device_id].rules, rule_state, r.ts.timestamp(),
                                                     r.values)]
            values.update(r.values)
            last = r.ts
        rows.append((device_id, last, _json(values), _json(rule_state), version))
    return out, rows


def _write_states(conn: psycopg.Connection, rows: list[tuple]) -> list[str]:
    """Upsert the states whose version is unchanged (thousands a batch: COPY, one statement);
    the ids of those changed by someone else since they were read."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS device_state_in (device_id text, ts timestamptz, values jsonb,"
                 " rules jsonb, version bigint) ON COMMIT DELETE ROWS")
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("DELETE FROM device_state_in")          # judged again: the first try's rows
        with cur.copy("COPY device_state_in (device_id, ts, values, rules, version) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        [stale] = cur.execute(
            "WITH up AS (INSERT INTO device_state AS s (device_id, ts, values, rules, seen_at, version)"
            "            SELECT device_id, ts, values, rules, now(), version + 1 FROM device_state_in"
            "            ON CONFLICT (device_id) DO UPDATE SET ts = excluded.ts, values = excluded.values,"
            "            rules = excluded.rules, seen_at = now(), version = excluded.version"
            "            WHERE s.version = excluded.version - 1 RETURNING device_id)"
            " SELECT array_agg(i.device_id) FROM device_state_in i"
            " WHERE NOT EXISTS (SELECT 1 FROM up WHERE up.device_id = i.device_id)").fetchone()
    return stale or []


def _heard_from(conn: psycopg.Connection, registered: dict[str, Registered]) -> None:
    """A reading ends the heartbeat alarms (设备离线) of the devices it came from."""
    silent = {(device_id, r.id): r for device_id, d in registered.items() for r in d.rules if r.silent_s is not None}
    if not silent:
        return
    for row in conn.execute("SELECT device_id, rule_id FROM device_alarm WHERE device_id = ANY(%s)"
                            " AND status IN ('active_unack', 'active_ack')", (list(registered),)).fetchall():
        rule = silent.get((row["device_id"], row["rule_id"]))
        if rule is not None:
            device_alarms.clear_alarm(conn, device_id=row["device_id"], rule=rule,
                                      at=dt.datetime.now(dt.timezone.utc))


def _apply(conn: psycopg.Connection, transitions: list[tuple[str, Transition]], registered: dict[str, Registered],
           desk: CaseDesk | None) -> None:
    repeats: dict[tuple[str, str], list] = {}
    for device_id, t in transitions:
        d = registered[device_id]
        at = dt.datetime.fromtimestamp(t.ts, dt.timezone.utc)
        if t.kind == "raise":
            device_alarms.raise_alarm(conn, device_id=device_id, rule=t.rule, at=at, values=t.values,
                                      part_id=d.part_id, lon=d.lon, lat=d.lat, desk=desk)
        elif t.kind == "clear":
            device_alarms.clear_alarm(conn, device_id=device_id, rule=t.rule, at=at)
        else:
            seen = repeats.setdefault((device_id, t.rule.id), [at, 0])
            seen[0], seen[1] = max(seen[0], at), seen[1] + 1
    for (device_id, rule_id), (last_at, times) in repeats.items():
        device_alarms.repeat_alarm(conn, device_id, rule_id, last_at, times)


def _statuses(conn: psycopg.Connection, statuses: list[DeviceStatus]) -> None:
    latest: dict[str, DeviceStatus] = {}
    for s in statuses:
        if s.device_id not in latest or s.at >= latest[s.device_id].at:
            latest[s.device_id] = s
    if not latest:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO device_state (device_id, online, status_at, seen_at) SELECT id, %s, %s, now() FROM device"
            " WHERE id = %s ON CONFLICT (device_id) DO UPDATE SET online = excluded.online,"
            " status_at = excluded.status_at, seen_at = now()"
            " WHERE device_state.status_at IS NULL OR device_state.status_at <= excluded.status_at",
            [(s.online, s.at, s.device_id) for s in latest.values()])
