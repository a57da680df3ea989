"""Benchmark: case deadlines (案卷时限) in working time.

Run: .venv/bin/python bench/bench_calendar.py

100,000 cases reported at random moments over 2025–2026, each with the limit of a random
event class from gis/seed/catalog.yaml, against the seeded work calendar:
  bulk    WorkCalendar.add_many, one call per distinct limit (precomputed working periods,
          numpy searchsorted),
  scalar  WorkCalendar.add in a Python loop over aware datetimes,
  naive   baseline: step minute by minute, checking each against the day's office hours
          (days cached), on a sample and extrapolated.
All three must agree on the sample. Single thread.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import sys  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from functools import lru_cache  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gis.catalog import read_catalog  # noqa: E402
from workflows.calendar import TZ, TimeLimit, WorkCalendar  # noqa: E402

CASES = 100_000
NAIVE_SAMPLE = 300
SEED = 20260302


def catalog_limits() -> list[TimeLimit]:
    doc = read_catalog()
    return [TimeLimit.from_catalog(**cls["limit"])
            for big in doc["events"].values() for cls in (big.get("classes") or {}).values()
            if "limit" in cls]


def make_cases(rng: np.random.Generator, limits: list[TimeLimit]) -> tuple[np.ndarray, np.ndarray]:
    lo = np.datetime64("2024-12-31T16:00", "s")                    # 2025-01-01 00:00 in Shanghai
    span = int((np.datetime64("2026-11-30T16:00", "s") - lo).astype(np.int64))
    starts = lo + rng.integers(0, span, CASES).astype("timedelta64[s]")
    return starts.astype("datetime64[us]"), rng.integers(0, len(limits), CASES)


def bulk(cal: WorkCalendar, starts: np.ndarray, which: np.ndarray, limits: list[TimeLimit]) -> np.ndarray:
    out = np.empty_like(starts)
    for k, limit in enumerate(limits):
        mask = which == k
        out[mask] = cal.add_many(starts[mask], limit)
    return out


def to_aware(values: np.ndarray) -> list[datetime]:
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return [epoch + timedelta(microseconds=int(us)) for us in values.astype(np.int64)]


def naive_add(cal: WorkCalendar, start: datetime, limit: TimeLimit) -> datetime:
    """Baseline: walk the clock a minute at a time, counting minutes inside office hours."""
    minutes = round(cal.minutes_of(limit))
    if not limit.kind.counts_working_time:
        return start + timedelta(minutes=minutes)
    periods = _day_periods(cal)
    t = start.astimezone(TZ)
    # Step from the start's whole minute; the partial first minute is taken exactly below.
    left = minutes * 60 + 0.0
    while left > 0:
        if any(a <= t < b for a, b in periods(t.date())):
            step = min(60 - t.second - t.microsecond / 1e6, left)
            left -= step
        else:
            step = 60 - t.second - t.microsecond / 1e6
        t += timedelta(seconds=step)
    return t


@lru_cache(maxsize=None)
def _day_periods(cal: WorkCalendar):
    # Office hours per day, looked up once per day so the baseline times the stepping itself.
    return lru_cache(maxsize=None)(cal.working_periods)


def main() -> None:
    cal = WorkCalendar.load()
    limits = catalog_limits()
    rng = np.random.default_rng(SEED)
    starts, which = make_cases(rng, limits)
    aware = to_aware(starts)
    cal.add_many(starts[:10], limits[0])                              # warm up: timeline built

    t0 = time.perf_counter()
    got_bulk = bulk(cal, starts, which, limits)
    bulk_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    got_scalar = [cal.add(s, limits[k]) for s, k in zip(aware, which.tolist())]
    scalar_s = time.perf_counter() - t0

    sample = rng.choice(CASES, NAIVE_SAMPLE, replace=False)
    t0 = time.perf_counter()
    got_naive = [naive_add(cal, aware[i], limits[which[i]]) for i in sample]
    naive_s = time.perf_counter() - t0

    bulk_aware = to_aware(got_bulk)
    mismatches = sum(bulk_aware[i] != got_scalar[i] for i in range(CASES))
    naive_mismatches = sum(abs((got_naive[j] - bulk_aware[i]).total_seconds()) > 1e-3
                           for j, i in enumerate(sample))
    if mismatches or naive_mismatches:
        sys.exit(f"disagreement: bulk vs scalar {mismatches}, bulk vs naive {naive_mismatches} of {NAIVE_SAMPLE}")

    print(f"{CASES:,} cases, {len(limits)} catalog limits, calendar years {cal.years}, "
          f"missing {cal.missing_years or 'none'}")
    print(f"  bulk add_many   {bulk_s * 1e3:8.1f} ms")
    print(f"  scalar add      {scalar_s * 1e3:8.1f} ms")
    print(f"  naive stepping  {naive_s / NAIVE_SAMPLE * CASES:8.1f} s extrapolated from {NAIVE_SAMPLE} cases")
    print(f"calendar: {CASES / bulk_s:,.0f} deadlines/s (scalar add {CASES / scalar_s:,.0f}/s; "
          f"baseline naive {NAIVE_SAMPLE / naive_s:,.0f}/s)")


if __name__ == "__main__":
    main()
