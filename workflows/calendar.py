"""Work calendar (工作日历): case deadlines counted in working time.

Every case (案卷) limit has a kind (时限类型):

* 工作时 (WORK_HOURS) — working minutes: only the office hours of working days count.
* 工作日 (WORK_DAYS)  — working days. 1 工作日 = the calendar's ``work_day_minutes`` working
  minutes (default: the length of its standard day, 390 min for 08:30–12:00 + 14:30–17:30,
  so "1 工作日 from Monday 10:00" is Tuesday 10:00). Cities that count 1 工作日 = 8 工作时
  set ``work_day_minutes: 480`` in the year files. Like 工作时 it runs on the working-minute
  clock: ``elapsed(..., WORK_DAYS)`` is working minutes, and ``TimeLimit(WORK_DAYS, m)`` is
  m working minutes, so "the time left" round-trips through elapsed → TimeLimit.
* 自然时 (NATURAL_HOURS) — wall-clock minutes, nights, weekends and holidays included.

Decisions:

* A case reported outside working hours starts counting at the next working minute
  (work kinds); natural hours start at once.
* The deadline is the first moment the whole limit is used: a 2 工作时 limit from
  10:00 ends at 12:00, not at 14:30 when the office reopens.
* Suspension (挂账) stops the clock; an open suspension means there is no deadline yet
  (``deadline_with`` returns None) unless the limit had already run out before it began.
* Approved extensions (延期) add to the limit; they must count on the same clock
  (working or natural) as the limit.
* A year without a holiday file is counted as Monday–Friday working with the hours of the
  nearest configured year; a warning is logged once per year and the year is listed in
  ``WorkCalendar.missing_years``.

Working time is precomputed as sorted working periods (integer microseconds since the Unix
epoch) with running totals, so ``add`` and ``elapsed`` are two binary searches and
``add_many`` does a whole array at once. All public functions take and return
timezone-aware datetimes (results in Asia/Shanghai) and refuse naive ones.
"""
from __future__ import annotations

import bisect
import logging
import math
import re
import threading
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from enum import Enum
from itertools import accumulate
from pathlib import Path
from typing import Any, Iterable, Sequence
from zoneinfo import ZoneInfo

import numpy as np
import yaml

log = logging.getLogger(__name__)

TZ = ZoneInfo("Asia/Shanghai")
SEED_CALENDAR_DIR = Path(__file__).parent / "seed" / "calendar"
DEFAULT_WORK_HOURS = ("08:30-12:00", "14:30-17:30")
STANDARD_WORK_DAY_MINUTES = 390   # 08:30–12:00 + 14:30–17:30; only for TimeLimit.minutes of day limits
US_PER_MINUTE = 60_000_000
MAX_SPAN_YEARS = 200        # refuse to build a timeline for absurd dates (bad input data)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)


class CalendarError(ValueError):
    """A calendar file or dictionary is not usable; the message names the source and field."""


# ----------------------------------------------------------------------------- limits
class LimitKind(str, Enum):
    WORK_HOURS = "工作时"
    WORK_DAYS = "工作日"
    NATURAL_HOURS = "自然时"

    @property
    def counts_working_time(self) -> bool:
        return self is not LimitKind.NATURAL_HOURS


def _parse_kind(kind: str | LimitKind) -> LimitKind:
    try:
        return LimitKind(kind)
    except ValueError:
        names = ", ".join(k.value for k in LimitKind)
        raise ValueError(f"unknown time limit kind {kind!r}; expected one of {names}") from None


def _check_amount(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a non-negative number, got {value!r}")


@dataclass(frozen=True)
class TimeLimit:
    """A time limit (时限) as an amount of minutes of its kind.

    ``minutes`` is wall-clock minutes for 自然时 and working minutes for 工作时 and 工作日.
    A limit given in days (``from_catalog('工作日', n)``, ``work_days(n)``) also keeps
    ``days``; the calendar then counts days × its own ``work_day_minutes`` and ``minutes``
    is only the figure for the standard 390-minute day.
    """
    kind: LimitKind
    minutes: int
    days: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _parse_kind(self.kind))
        if isinstance(self.minutes, bool) or not isinstance(self.minutes, int) or self.minutes < 0:
            raise ValueError(f"time limit minutes must be a non-negative integer, got {self.minutes!r}")
        if self.days is not None:
            if self.kind is not LimitKind.WORK_DAYS:
                raise ValueError(f"only 工作日 limits have days, not {self.kind.value}")
            _check_amount(self.days, "time limit days")

    @classmethod
    def from_catalog(cls, kind: str | LimitKind, value: float) -> TimeLimit:
        """An event's ``limit: {kind, value}``: hours for 工作时/自然时, days for 工作日."""
        kind = _parse_kind(kind)
        _check_amount(value, "time limit value")
        if kind is LimitKind.WORK_DAYS:
            return cls(kind, round(value * STANDARD_WORK_DAY_MINUTES), days=value)
        return cls(kind, round(value * 60))

    @classmethod
    def from_stage(cls, kind: str | LimitKind, minutes: int) -> TimeLimit:
        """A ``stage_limits`` entry ``{kind, minutes}``; minutes are working minutes for the
        work kinds, wall-clock minutes for 自然时."""
        return cls(_parse_kind(kind), minutes)

    @classmethod
    def work_hours(cls, hours: float) -> TimeLimit:
        return cls.from_catalog(LimitKind.WORK_HOURS, hours)

    @classmethod
    def work_days(cls, days: float) -> TimeLimit:
        return cls.from_catalog(LimitKind.WORK_DAYS, days)

    @classmethod
    def natural_hours(cls, hours: float) -> TimeLimit:
        return cls.from_catalog(LimitKind.NATURAL_HOURS, hours)

    def __str__(self) -> str:
        if self.days is not None:
            return f"{self.days:g} 工作日"
        if self.kind is LimitKind.WORK_DAYS:
            return f"{self.minutes} working minutes (工作日)"
        return f"{self.minutes / 60:g} {self.kind.value}"


# --------------------------------------------------------------------- time helpers
def _require_aware(value: Any, what: str = "datetime") -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{what}: expected a timezone-aware datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what}: naive datetime {value.isoformat()} refused; give a timezone-aware "
                         "datetime, e.g. tzinfo=ZoneInfo('Asia/Shanghai')")
    return value


def _to_us(value: datetime, what: str = "datetime") -> int:
    """Microseconds since the Unix epoch (exact integer arithmetic)."""
    return (_require_aware(value, what) - _EPOCH) // _ONE_US


def _from_us(us: int) -> datetime:
    return (_EPOCH + timedelta(microseconds=int(us))).astimezone(TZ)


def _local_year(us: int) -> int:
    return _from_us(us).year


def _as_local_date(d: date) -> date:
    if isinstance(d, datetime):
        return _require_aware(d, "day").astimezone(TZ).date()
    if not isinstance(d, date):
        raise ValueError(f"expected a date, got {d!r}")
    return d


# ------------------------------------------------------------------- configuration
Period = tuple[int, int]    # minutes from local midnight, [start, end)

_PERIOD_RE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_MONTH_DAY_RE = re.compile(r"^(\d{1,2})-(\d{1,2})$")
_YEAR_KEYS = {"year", "source", "work_hours", "work_day_minutes", "holidays", "workdays"}


@dataclass(frozen=True)
class _Season:
    """Other office hours for a MM-DD range (inclusive; may wrap the new year), e.g. 夏季作息."""
    name: str
    first: tuple[int, int]
    last: tuple[int, int]
    periods: tuple[Period, ...]

    def covers(self, d: date) -> bool:
        md = (d.month, d.day)
        if self.first <= self.last:
            return self.first <= md <= self.last
        return md >= self.first or md <= self.last


@dataclass(frozen=True)
class _YearRules:
    year: int
    source: str
    periods: tuple[Period, ...]
    seasons: tuple[_Season, ...] = ()
    work_day_minutes: int | None = None

    def periods_on(self, d: date) -> tuple[Period, ...]:
        for season in self.seasons:
            if season.covers(d):
                return season.periods
        return self.periods

    @property
    def standard_minutes(self) -> int:
        return sum(end - start for start, end in self.periods)


@dataclass(frozen=True)
class _SpecialDay:
    """A 法定节假日 (working=False) or a 调休 working weekend day (working=True)."""
    working: bool
    name: str
    source: str


class _Fields:
    """Builds error messages that name the source (file) and the field path."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str, message: str) -> CalendarError:
        return CalendarError(f"{self.source}: {field}: {message}")

    def mapping(self, value: Any, field: str, allowed: set[str], required: Iterable[str] = ()) -> dict:
        if not isinstance(value, dict):
            raise self.fail(field, f"expected a mapping, got {value!r}")
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise self.fail(field, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        for key in required:
            if key not in value:
                raise self.fail(field, f"missing '{key}'")
        return value

    def sequence(self, value: Any, field: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(field, f"expected a list, got {value!r}")
        return value

    def day(self, value: Any, field: str) -> date:
        if isinstance(value, datetime):
            raise self.fail(field, f"expected a date (YYYY-MM-DD), got a date and time {value!r}")
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise self.fail(field, f"{value!r} is not a date (YYYY-MM-DD)") from None

    def month_day(self, value: Any, field: str) -> tuple[int, int]:
        m = _MONTH_DAY_RE.match(str(value))
        try:
            if not m:
                raise ValueError
            date(2000, int(m[1]), int(m[2]))    # a leap year, so 02-29 is accepted
        except ValueError:
            raise self.fail(field, f"{value!r} is not a month-day (MM-DD)") from None
        return int(m[1]), int(m[2])

    def periods(self, value: Any, field: str) -> tuple[Period, ...]:
        items = self.sequence(value, field)
        if not items:
            raise self.fail(field, "needs at least one period like '08:30-12:00'")
        periods = [self._period(item, f"{field}[{i}]") for i, item in enumerate(items)]
        for i in range(1, len(periods)):
            if periods[i][0] < periods[i - 1][1]:
                raise self.fail(f"{field}[{i}]", "periods must be in order and must not overlap")
        return tuple(periods)

    def _period(self, value: Any, field: str) -> Period:
        m = _PERIOD_RE.match(str(value)) if isinstance(value, str) else None
        if not m:
            raise self.fail(field, f"{value!r} is not a period 'HH:MM-HH:MM' (quote it in YAML)")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if m1 > 59 or m2 > 59 or start >= end or end > 24 * 60:
            raise self.fail(field, f"{value!r} is not a period 'HH:MM-HH:MM' with 00:00 <= start < end <= 24:00")
        return start, end


_DEFAULT_PERIODS = _Fields("DEFAULT_WORK_HOURS").periods(list(DEFAULT_WORK_HOURS), "hours")


def _parse_work_hours(value: Any, f: _Fields) -> tuple[tuple[Period, ...], tuple[_Season, ...]]:
    if value is None:
        return _DEFAULT_PERIODS, ()
    f.mapping(value, "work_hours", {"default", "seasons"}, required=("default",))
    periods = f.periods(value["default"], "work_hours.default")
    seasons = []
    for i, item in enumerate(f.sequence(value.get("seasons"), "work_hours.seasons")):
        field = f"work_hours.seasons[{i}]"
        f.mapping(item, field, {"name", "from", "to", "periods"}, required=("from", "to", "periods"))
        seasons.append(_Season(name=str(item.get("name", f"season {i}")),
                               first=f.month_day(item["from"], f"{field}.from"),
                               last=f.month_day(item["to"], f"{field}.to"),
                               periods=f.periods(item["periods"], f"{field}.periods")))
    return periods, tuple(seasons)


def _check_near_year(d: date, year: int, field: str, f: _Fields) -> None:
    # A notice may reach a few days into the neighbouring year (元旦 across the new year),
    # never further: anything else is a typo in the year.
    lo, hi = date(year, 1, 1) - timedelta(days=7), date(year, 12, 31) + timedelta(days=7)
    if not lo <= d <= hi:
        raise f.fail(field, f"{d.isoformat()} is not in {year} (nor within a week of it)")


def _parse_holidays(value: Any, year: int, f: _Fields) -> dict[date, _SpecialDay]:
    days: dict[date, _SpecialDay] = {}
    for i, item in enumerate(f.sequence(value, "holidays")):
        field = f"holidays[{i}]"
        f.mapping(item, field, {"name", "from", "to"}, required=("name", "from"))
        first = f.day(item["from"], f"{field}.from")
        last = f.day(item.get("to", item["from"]), f"{field}.to")
        _check_near_year(first, year, f"{field}.from", f)
        _check_near_year(last, year, f"{field}.to", f)
        if last < first:
            raise f.fail(f"{field}.to", f"{last.isoformat()} is before from {first.isoformat()}")
        for n in range((last - first).days + 1):
            days[first + timedelta(days=n)] = _SpecialDay(False, str(item["name"]), f.source)
    return days


def _parse_workdays(value: Any, year: int, holidays: dict[date, _SpecialDay], f: _Fields) -> dict[date, _SpecialDay]:
    days: dict[date, _SpecialDay] = {}
    for i, item in enumerate(f.sequence(value, "workdays")):
        field = f"workdays[{i}]"
        f.mapping(item, field, {"name", "date"}, required=("date",))
        d = f.day(item["date"], f"{field}.date")
        _check_near_year(d, year, f"{field}.date", f)
        if d.weekday() < 5:
            raise f.fail(f"{field}.date", f"{d.isoformat()} is a {d:%A}, already a working day; "
                                          "调休 working days are Saturdays or Sundays")
        if d in holidays:
            raise f.fail(f"{field}.date", f"{d.isoformat()} is also listed under holidays")
        days[d] = _SpecialDay(True, str(item.get("name", "调休")), f.source)
    return days


def _parse_year(year: int, doc: Any, source: str) -> tuple[_YearRules, dict[date, _SpecialDay]]:
    f = _Fields(source)
    if doc is None:
        doc = {}
    f.mapping(doc, "(top level)", _YEAR_KEYS)
    if "year" in doc and doc["year"] != year:
        raise f.fail("year", f"says {doc['year']!r} but the calendar is for {year}")
    periods, seasons = _parse_work_hours(doc.get("work_hours"), f)
    wdm = doc.get("work_day_minutes")
    if wdm is not None and (isinstance(wdm, bool) or not isinstance(wdm, int) or not 0 < wdm <= 1440):
        raise f.fail("work_day_minutes", f"expected whole minutes between 1 and 1440, got {wdm!r}")
    holidays = _parse_holidays(doc.get("holidays"), year, f)
    workdays = _parse_workdays(doc.get("workdays"), year, holidays, f)
    rules = _YearRules(year, source, periods, seasons, wdm)
    return rules, {**holidays, **workdays}


def _merge_special_days(parts: Iterable[dict[date, _SpecialDay]]) -> dict[date, _SpecialDay]:
    merged: dict[date, _SpecialDay] = {}
    for part in parts:
        for d, day in part.items():
            seen = merged.get(d)
            if seen is not None and seen.working != day.working:
                raise CalendarError(f"{day.source}: {d.isoformat()} is a "
                                    f"{'working day' if day.working else 'holiday'} here but a "
                                    f"{'working day' if seen.working else 'holiday'} in {seen.source}")
            merged[d] = day
    return merged


def _resolve_work_day_minutes(rules: Sequence[_YearRules]) -> int:
    explicit = {r.source: r.work_day_minutes for r in rules if r.work_day_minutes is not None}
    if len(set(explicit.values())) > 1:
        listed = ", ".join(f"{src}={v}" for src, v in explicit.items())
        raise CalendarError(f"work_day_minutes differs between years ({listed}); one 工作日 must have one length")
    if explicit:
        return next(iter(explicit.values()))
    standard = {r.source: r.standard_minutes for r in rules}
    if len(set(standard.values())) > 1:
        listed = ", ".join(f"{src}={v}" for src, v in standard.items())
        raise CalendarError(f"the standard day differs between years ({listed}); "
                            "set work_day_minutes to say how long one 工作日 is")
    if standard:
        return next(iter(standard.values()))
    return sum(end - start for start, end in _DEFAULT_PERIODS)


# ------------------------------------------------------------------------- timeline
class _Timeline:
    """The working periods of whole years [first_year, last_year], sorted, with running totals.

    worked(t) = working µs from the first period up to t; moment(w) is its inverse (the first
    instant at which w working µs have passed). Both are one binary search.
    """

    def __init__(self, first_year: int, last_year: int, starts: list[int], ends: list[int]):
        self.first_year, self.last_year = first_year, last_year
        self.lo_us = _to_us(datetime(first_year, 1, 1, tzinfo=TZ))
        self.hi_us = _to_us(datetime(last_year + 1, 1, 1, tzinfo=TZ))
        lengths = [e - s for s, e in zip(starts, ends)]
        self.starts, self.ends = starts, ends
        self.after = list(accumulate(lengths))                  # total at each period's end
        self.before = [a - n for a, n in zip(self.after, lengths)]
        self.total = self.after[-1] if self.after else 0
        self.np_starts = np.asarray(starts, dtype=np.int64)
        self.np_ends = np.asarray(ends, dtype=np.int64)
        self.np_after = np.asarray(self.after, dtype=np.int64)
        self.np_before = np.asarray(self.before, dtype=np.int64)

    def covers(self, lo_us: int, hi_us: int) -> bool:
        return self.lo_us <= lo_us and hi_us < self.hi_us

    def worked(self, t: int) -> int:
        i = bisect.bisect_right(self.starts, t) - 1
        if i < 0:
            return 0
        return self.before[i] + min(t, self.ends[i]) - self.starts[i]

    def moment(self, target: int) -> int:
        """First instant with worked() == target; needs 0 < target <= total."""
        j = bisect.bisect_left(self.after, target)
        return self.starts[j] + target - self.before[j]

    def worked_many(self, t: np.ndarray) -> np.ndarray:
        i = np.searchsorted(self.np_starts, t, side="right") - 1
        inside = i >= 0
        i = np.maximum(i, 0)
        part = np.minimum(t, self.np_ends[i]) - self.np_starts[i]
        return np.where(inside, self.np_before[i] + part, 0)

    def moment_many(self, target: np.ndarray) -> np.ndarray:
        j = np.searchsorted(self.np_after, target, side="left")
        return self.np_starts[j] + target - self.np_before[j]


# --------------------------------------------------------------------- the calendar
class WorkCalendar:
    """Working days and hours, holidays (法定节假日) and 调休 working days, per year."""

    def __init__(self, rules: dict[int, _YearRules], special_days: dict[date, _SpecialDay],
                 work_day_minutes: int):
        self._rules = dict(rules)
        self._special = dict(special_days)
        self.work_day_minutes = work_day_minutes
        self._missing: set[int] = set()
        self._lock = threading.Lock()
        self._timeline: _Timeline | None = None
        if self._rules:
            self._ensure_years(min(self._rules), max(self._rules))

    # ---- construction
    @classmethod
    def load(cls, directory: Path = SEED_CALENDAR_DIR) -> WorkCalendar:
        """Every ``<year>.yaml`` in the directory."""
        directory = Path(directory)
        files = sorted(directory.glob("*.yaml"))
        if not files:
            raise CalendarError(f"{directory}: no calendar files (<year>.yaml)")
        parsed = []
        for path in files:
            if not re.fullmatch(r"\d{4}", path.stem):
                raise CalendarError(f"{path}: file name must be the year, like 2026.yaml")
            try:
                doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (yaml.YAMLError, ValueError) as e:     # PyYAML raises ValueError for 2026-13-01
                raise CalendarError(f"{path}: not valid YAML: {e}") from e
            parsed.append(_parse_year(int(path.stem), doc, str(path)))
        return cls._assemble(parsed)

    @classmethod
    def from_dict(cls, years: dict[int, dict]) -> WorkCalendar:
        """Year → the same mapping a year file holds (``holidays``, ``workdays``, ...)."""
        parsed = []
        for year, doc in sorted(years.items()):
            if isinstance(year, bool) or not isinstance(year, int):
                raise CalendarError(f"calendar years must be integers, got {year!r}")
            parsed.append(_parse_year(year, doc, f"year {year}"))
        return cls._assemble(parsed)

    @classmethod
    def _assemble(cls, parsed: list[tuple[_YearRules, dict[date, _SpecialDay]]]) -> WorkCalendar:
        rules = [r for r, _ in parsed]
        special = _merge_special_days(days for _, days in parsed)
        return cls({r.year: r for r in rules}, special, _resolve_work_day_minutes(rules))

    # ---- days
    @property
    def years(self) -> tuple[int, ...]:
        """Years with a holiday schedule."""
        return tuple(sorted(self._rules))

    @property
    def missing_years(self) -> tuple[int, ...]:
        """Years used so far that had no schedule (counted as Monday–Friday working)."""
        return tuple(sorted(self._missing))

    def is_working_day(self, d: date) -> bool:
        d = _as_local_date(d)
        self._note_year(d.year)
        special = self._special.get(d)
        if special is not None:
            return special.working
        return d.weekday() < 5

    def day_name(self, d: date) -> str | None:
        """The holiday or 调休 name of a day, if it has one."""
        special = self._special.get(_as_local_date(d))
        return special.name if special else None

    def working_periods(self, d: date) -> list[tuple[datetime, datetime]]:
        """The day's office hours as aware datetimes (empty on days off)."""
        d = _as_local_date(d)
        if not self.is_working_day(d):
            return []
        midnight = datetime.combine(d, time(0), TZ)
        return [(midnight + timedelta(minutes=a), midnight + timedelta(minutes=b))
                for a, b in self._rules_for(d.year).periods_on(d)]

    def _rules_for(self, year: int) -> _YearRules:
        if year in self._rules:
            return self._rules[year]
        if not self._rules:
            return _YearRules(year, "defaults", _DEFAULT_PERIODS)
        nearest = min(self._rules, key=lambda y: (abs(y - year), y))
        return self._rules[nearest]

    def _note_year(self, year: int) -> None:
        if year in self._rules or year in self._missing:
            return
        with self._lock:
            if year in self._missing:
                return
            self._missing.add(year)
        log.warning("work calendar: no holiday schedule for %d; counting Monday–Friday as working "
                    "days there (add workflows/seed/calendar/%d.yaml)", year, year)

    # ---- limits
    def minutes_of(self, limit: TimeLimit) -> float:
        """The limit on its clock: working minutes for 工作时/工作日, wall minutes for 自然时."""
        return self._budget_us(limit) / US_PER_MINUTE

    def _budget_us(self, limit: TimeLimit) -> int:
        if limit.days is not None:
            # This calendar's day length, not the standard one baked into limit.minutes.
            return round(limit.days * self.work_day_minutes * US_PER_MINUTE)
        return limit.minutes * US_PER_MINUTE

    def add(self, start: datetime, limit: TimeLimit) -> datetime:
        """The deadline: the first moment at which the whole limit has been used."""
        return _from_us(self._add_us(_to_us(start, "start"), limit.kind, self._budget_us(limit)))

    def elapsed(self, start: datetime, end: datetime, kind: LimitKind) -> int:
        """Whole minutes between start and end on the kind's clock (working minutes for
        工作时 and 工作日); negative if end is before start."""
        us = self._between_us(_to_us(start, "start"), _to_us(end, "end"), _parse_kind(kind))
        return us // US_PER_MINUTE if us >= 0 else -(-us // US_PER_MINUTE)

    def used_fraction(self, start: datetime, now: datetime, limit: TimeLimit,
                      paused_minutes_of_kind: float = 0) -> float:
        """Share of the limit used by now (> 1 when overdue); paused minutes are on the
        limit's clock, as ``elapsed`` gives them."""
        t0, t1 = _to_us(start, "start"), _to_us(now, "now")
        used = max(0, self._between_us(t0, max(t0, t1), limit.kind) - paused_minutes_of_kind * US_PER_MINUTE)
        budget = self._budget_us(limit)
        if budget == 0:
            return 1.0          # a zero limit is used up at once
        return used / budget

    def warn_at(self, start: datetime, limit: TimeLimit, fraction: float = 0.8) -> datetime:
        """The moment ``fraction`` of the limit is used (yellow from then on)."""
        budget = self._scaled(self._budget_us(limit), fraction)
        return _from_us(self._add_us(_to_us(start, "start"), limit.kind, budget))

    def deadline_with(self, start: datetime, limit: TimeLimit,
                      pauses: Sequence[tuple[datetime, datetime | None]] = (),
                      extensions: Sequence[TimeLimit] = (), fraction: float = 1.0) -> datetime | None:
        """Deadline with suspensions (挂账) and approved extensions (延期).

        Time inside a pause does not count. An open pause (end None) that begins before the
        deadline means the clock is stopped: there is no deadline yet, so None. Pauses that
        begin at or after the deadline change nothing (the case was already overdue).
        ``fraction=0.8`` gives the matching warn moment.
        """
        t0 = _to_us(start, "start")
        budget = self._scaled(self._budget_us(limit) + self._extension_us(limit, extensions), fraction)
        deadline = self._add_us(t0, limit.kind, budget)
        paused = 0
        for p0, p1 in _merge_pauses(pauses):
            if p0 >= deadline:
                break
            if p1 is None:
                return None
            if p1 > t0:
                paused += self._between_us(max(p0, t0), p1, limit.kind)
                deadline = self._add_us(t0, limit.kind, budget + paused)
        return _from_us(deadline)

    def add_many(self, starts: np.ndarray, limit: TimeLimit) -> np.ndarray:
        """Deadlines for many starts at once.

        ``starts`` is a numpy datetime64 array read as UTC instants (numpy's convention), or
        an object array of aware datetimes; the result is datetime64[us] in UTC.
        """
        t = _starts_to_us(starts)
        budget = self._budget_us(limit)
        if limit.kind is LimitKind.NATURAL_HOURS or budget == 0 or t.size == 0:
            return (t + budget).astype("datetime64[us]")
        tl = self._timeline_for(int(t.min()), int(t.max()))
        while True:
            target = tl.worked_many(t) + budget
            if int(target.max()) <= tl.total:
                return tl.moment_many(target).astype("datetime64[us]")
            tl = self._grow(tl)

    # ---- internals on µs
    @staticmethod
    def _scaled(budget_us: int, fraction: float) -> int:
        if not 0 <= fraction or not math.isfinite(fraction):
            raise ValueError(f"fraction must be a finite number >= 0, got {fraction!r}")
        return round(budget_us * fraction)

    def _extension_us(self, limit: TimeLimit, extensions: Sequence[TimeLimit]) -> int:
        total = 0
        for ext in extensions:
            if ext.kind.counts_working_time != limit.kind.counts_working_time:
                raise ValueError(f"extension {ext} does not count on the same clock as the limit {limit}")
            total += self._budget_us(ext)
        return total

    def _add_us(self, t0: int, kind: LimitKind, budget: int) -> int:
        if kind is LimitKind.NATURAL_HOURS:
            return t0 + budget
        if budget <= 0:
            return t0
        tl = self._timeline_for(t0, t0)
        while True:
            target = tl.worked(t0) + budget
            if target <= tl.total:
                return tl.moment(target)
            tl = self._grow(tl)

    def _between_us(self, t0: int, t1: int, kind: LimitKind) -> int:
        if kind is LimitKind.NATURAL_HOURS:
            return t1 - t0
        tl = self._timeline_for(min(t0, t1), max(t0, t1))
        return tl.worked(t1) - tl.worked(t0)

    def _timeline_for(self, lo_us: int, hi_us: int) -> _Timeline:
        tl = self._timeline
        if tl is not None and tl.covers(lo_us, hi_us):
            return tl
        return self._ensure_years(_local_year(lo_us), _local_year(hi_us))

    def _grow(self, tl: _Timeline) -> _Timeline:
        # One more year; MAX_SPAN_YEARS in _ensure_years bounds the loops that call this.
        return self._ensure_years(tl.first_year, tl.last_year + 1)

    def _ensure_years(self, first: int, last: int) -> _Timeline:
        tl = self._timeline
        if tl is not None and tl.first_year <= first and last <= tl.last_year:
            return tl
        if tl is not None:
            first, last = min(first, tl.first_year), max(last, tl.last_year)
        if last - first > MAX_SPAN_YEARS:
            raise ValueError(f"dates from {first} to {last} are too far apart for the work calendar")
        for year in range(first, last + 1):
            self._note_year(year)
        built = self._build_timeline(first, last)
        with self._lock:
            current = self._timeline
            if current is None or (built.first_year <= current.first_year and current.last_year <= built.last_year):
                self._timeline = built
        return built

    def _build_timeline(self, first: int, last: int) -> _Timeline:
        starts: list[int] = []
        ends: list[int] = []
        d, stop = date(first, 1, 1), date(last + 1, 1, 1)
        while d < stop:
            for a, b in self._periods_for_timeline(d):
                starts.append(a)
                ends.append(b)
            d += timedelta(days=1)
        return _Timeline(first, last, starts, ends)

    def _periods_for_timeline(self, d: date) -> list[tuple[int, int]]:
        special = self._special.get(d)
        working = special.working if special is not None else d.weekday() < 5
        if not working:
            return []
        midnight = datetime.combine(d, time(0), TZ)
        return [(_to_us(midnight + timedelta(minutes=a)), _to_us(midnight + timedelta(minutes=b)))
                for a, b in self._rules_for(d.year).periods_on(d)]


def _merge_pauses(pauses: Sequence[tuple[datetime, datetime | None]]) -> list[tuple[int, int | None]]:
    """Pauses as sorted, non-overlapping µs spans; an open pause swallows all after it."""
    spans = []
    for i, pause in enumerate(pauses):
        p0, p1 = pause
        a = _to_us(p0, f"pauses[{i}] start")
        b = None if p1 is None else _to_us(p1, f"pauses[{i}] end")
        if b is not None and b < a:
            raise ValueError(f"pauses[{i}] ends before it starts")
        spans.append((a, b))
    spans.sort(key=lambda s: s[0])
    merged: list[tuple[int, int | None]] = []
    for a, b in spans:
        if merged and (merged[-1][1] is None or a <= merged[-1][1]):
            last_a, last_b = merged[-1]
            merged[-1] = (last_a, None if last_b is None or b is None else max(last_b, b))
        else:
            merged.append((a, b))
    return merged


def _starts_to_us(starts: np.ndarray) -> np.ndarray:
    arr = np.asarray(starts)
    if arr.dtype == object:
        return np.fromiter((_to_us(s, f"starts[{i}]") for i, s in enumerate(arr.ravel())),
                           dtype=np.int64, count=arr.size).reshape(arr.shape)
    if not np.issubdtype(arr.dtype, np.datetime64):
        raise ValueError(f"starts must be datetime64 (UTC) or aware datetimes, got dtype {arr.dtype}")
    if np.isnat(arr).any():
        raise ValueError("starts contain NaT")
    return arr.astype("datetime64[us]").astype(np.int64)


# --------------------------------------------------------------------------- status
def due_status(now: datetime, warn_at: datetime, deadline: datetime) -> str:
    """'green' before warn_at, 'yellow' from warn_at until the deadline, 'red' (超期) after it."""
    t, warn, due = _to_us(now, "now"), _to_us(warn_at, "warn_at"), _to_us(deadline, "deadline")
    if t > due:
        return "red"
    if t >= warn:
        return "yellow"
    return "green"
