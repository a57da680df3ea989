"""Daily position partitions: made ahead by the application role (through the owner's
functions), covering the days a fix may still arrive for, dropped after the retention."""
from __future__ import annotations

import datetime as dt

import pytest

from devices import partitions
from gis.db import prepare_app_session


def _days(db) -> list[str]:
    return [r["relname"] for r in db.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'position'::regclass ORDER BY c.relname").fetchall()]


def test_the_app_role_makes_and_drops_partitions(db):
    prepare_app_session(db, "citygrid_app")
    today = dt.date(2026, 3, 2)
    assert partitions.ensure(db, today) == 11                   # 8 days back … 2 ahead
    assert partitions.ensure(db, today) == 0                    # idempotent
    assert _days(db)[0] == "position_20260222" and _days(db)[-1] == "position_20260304"
    # A fix at 23:30 China time on 3 March lands in that local day's partition.
    t = dt.datetime(2026, 3, 3, 15, 30, tzinfo=dt.timezone.utc)
    db.execute("INSERT INTO position (device, fix_time, unit_id, received_at, lon, lat)"
               " VALUES ('osmand:1', %s, 1, %s, 113.3, 27.0)", (t, t))
    assert db.execute("SELECT tableoid::regclass::text AS p FROM position").fetchone()["p"] == "position_20260303"
    assert partitions.drop_expired(db, dt.date(2026, 3, 20), retention_days=17) == 9     # keeps 3 March on
    assert _days(db) == ["position_20260303", "position_20260304"]


def test_a_retention_shorter_than_late_fixes_is_refused(db):
    with pytest.raises(ValueError, match="at least"):
        partitions.drop_expired(db, dt.date(2026, 3, 2), retention_days=3)


def test_the_app_role_cannot_create_tables_itself(db):
    import psycopg
    prepare_app_session(db, "citygrid_app")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("CREATE TABLE position_29990101 PARTITION OF position"
                   " FOR VALUES FROM ('2999-01-01') TO ('2999-01-02')")


def test_a_batch_and_the_partition_upkeep_at_the_same_moment_take_turns(db, settings):
    """A worker's hourly upkeep making partitions while another process writes its first
    batch: the writer must wait for the partition lock before it touches the position table,
    or each holds what the other needs (PostgreSQL then kills one: a 503 to a phone)."""
    import threading

    from devices.fix import Fix
    from devices.registry import add_unit
    from devices.store import Batch, Limits, Received, Writer, write
    from gis.db import connect

    add_unit(db, name="监督员", kind="inspector", actor="test", devices=["osmand:77"])
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    batch = Batch(received_at=now)
    batch.fixes.append((Fix(device="osmand:77", fix_time=now, lon=113.3405, lat=27.0005),
                        Received("osmand", "/osmand", b"", now)))
    outcome: dict = {}

    def write_batch() -> None:
        with connect(settings.database_url) as conn:
            prepare_app_session(conn, settings.db_app_role)
            try:
                outcome["written"] = write(conn, batch, Writer(Limits(100.0, 50.0, None)))
            except Exception as exc:  # noqa: BLE001 — reported by the assertion below
                outcome["error"] = exc

    with connect(settings.database_url) as upkeep:
        prepare_app_session(upkeep, settings.db_app_role)
        with upkeep.transaction():
            # The upkeep is between taking the partition lock and creating the tables …
            upkeep.execute("SELECT pg_advisory_xact_lock(hashtext('citygrid.position_partitions'))")
            writer = threading.Thread(target=write_batch)
            writer.start()
            for _ in range(200):                        # … when the batch comes and waits for it
                waiting = db.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                     " AND wait_event = 'advisory'").fetchone()["n"]
                if waiting:
                    break
                writer.join(0.05)
            assert waiting == 1
            made = partitions.ensure(upkeep, partitions.local_day(now))
        writer.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert made == 11 and len(outcome["written"].stored) == 1


def test_telemetry_has_its_day_partitions_too_and_no_other_table_does(db):
    import psycopg
    prepare_app_session(db, "citygrid_app")
    today = dt.date(2026, 3, 2)
    assert partitions.ensure(db, today, "telemetry") == 11
    assert partitions.drop_expired(db, dt.date(2026, 3, 20), retention_days=17, table="telemetry") == 9
    with pytest.raises(psycopg.errors.RaiseException, match="no daily partitions for table audit_log"):
        partitions.ensure(db, today, "audit_log")
