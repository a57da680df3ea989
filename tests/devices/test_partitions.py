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
