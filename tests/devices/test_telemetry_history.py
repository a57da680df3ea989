"""Telemetry history and its downsampling against the real database: old days rolled up into
hourly avg/min/max and their raw partition dropped, and hourly rows expiring (the chart API
that reads them is tested in tests/command/test_device_api.py)."""
from __future__ import annotations

import datetime as dt

import pytest
from psycopg.types.json import Jsonb

from devices import telemetry_history
from devices.device_registry import NewDevice, add_device
from devices.partitions import MIN_RETENTION_DAYS
from workflows.cases import LOCAL_TZ

COVER = "4302230101000001"
TODAY = dt.datetime.now(LOCAL_TZ).date()


@pytest.fixture
def cover(db, tiny_city):
    add_device(db, NewDevice("MC-1", "manhole_cover", part_id=COVER), actor="test")
    return "MC-1"


def _readings(db, device: str, start: dt.datetime, values: list[dict], every: dt.timedelta) -> None:
    """Raw readings straight into telemetry (its day's partition made first, as the worker does)."""
    days = {(start + every * i).astimezone(LOCAL_TZ).date() for i in range(len(values))}
    db.execute("SELECT ensure_day_partitions('telemetry', %s, %s)", (min(days), max(days)))
    with db.cursor() as cur:
        cur.executemany("INSERT INTO telemetry (device_id, ts, received_at, values) VALUES (%s, %s, now(), %s)",
                        [(device, start + every * i, Jsonb(v)) for i, v in enumerate(values)])


def test_old_days_are_rolled_up_into_hours_and_their_raw_partition_dropped(db, cover):
    old_day = TODAY - dt.timedelta(days=40)
    nine = dt.datetime.combine(old_day, dt.time(9), LOCAL_TZ)
    # 09:00–09:59: tilt 1, 2, 3, open twice of four; 10:xx: one reading with text only
    _readings(db, cover, nine, [{"tilt_deg": 1, "open": False}, {"tilt_deg": 2, "open": True},
                                {"tilt_deg": 3, "open": True}, {"open": False}], dt.timedelta(minutes=10))
    _readings(db, cover, nine + dt.timedelta(hours=1, minutes=5), [{"firmware": "1.2"}], dt.timedelta(0))
    _readings(db, cover, dt.datetime.combine(TODAY, dt.time(8), LOCAL_TZ), [{"tilt_deg": 5}], dt.timedelta(0))

    done = telemetry_history.downsample(db, TODAY, raw_days_kept=30, hourly_days_kept=400)
    assert done == {"hours_rolled_up": 2, "partitions_dropped": 1, "hourly_deleted": 0}
    rows = db.execute("SELECT hour, n, avg, min, max FROM telemetry_hourly ORDER BY hour").fetchall()
    assert [(r["hour"], r["n"]) for r in rows] == [(nine, 4), (nine + dt.timedelta(hours=1), 1)]
    assert (rows[0]["avg"], rows[0]["min"], rows[0]["max"]) == (
        {"tilt_deg": 2, "open": 0.5}, {"tilt_deg": 1, "open": 0}, {"tilt_deg": 3, "open": 1})
    assert (rows[1]["avg"], rows[1]["min"]) == ({}, {})                     # text is not rolled up
    assert old_day not in telemetry_history.raw_days(db) and TODAY in telemetry_history.raw_days(db)
    assert db.execute("SELECT count(*) AS n FROM telemetry").fetchone()["n"] == 1      # today's stays

    assert telemetry_history.downsample(db, TODAY, raw_days_kept=30, hourly_days_kept=400) == {
        "hours_rolled_up": 0, "partitions_dropped": 0, "hourly_deleted": 0}           # nothing left to do
    assert telemetry_history.downsample(db, TODAY, raw_days_kept=30, hourly_days_kept=39)["hourly_deleted"] == 2


def test_downsampling_refuses_settings_that_would_lose_readings(db):
    with pytest.raises(ValueError, match="at least"):
        telemetry_history.downsample(db, TODAY, raw_days_kept=MIN_RETENTION_DAYS - 1, hourly_days_kept=400)
    with pytest.raises(ValueError, match="as long as the raw"):
        telemetry_history.downsample(db, TODAY, raw_days_kept=30, hourly_days_kept=20)
