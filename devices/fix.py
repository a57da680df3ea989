"""What every decoder produces: position fixes and device events, in SI units and UTC.

A decoder turns one received message (an MQTT payload, an HTTP request) into a list of
these, or raises DecodeError naming what is wrong; the pipeline stores the fixes and
sends a refused message to the dead-letter table with that reason. Decoders do not know
units or shifts: `device` is the key a unit's device binding is registered under."""
from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

_T = TypeVar("_T")

# How far a fix time may lie from the time the message arrived before it is refused:
# a phone with a wrong clock, or a replay of something ancient.
MAX_FUTURE = dt.timedelta(minutes=10)
MAX_AGE = dt.timedelta(days=7)
MAX_PAYLOAD_BYTES = 256 * 1024          # one message; a native batch of ~2,000 fixes fits


class DecodeError(ValueError):
    """A message that cannot be taken. `reason` is a short stable code for counting
    (bad_json, missing_field, bad_type, bad_coordinates, bad_timestamp, future_timestamp,
    ancient_timestamp, too_large, unknown_type, bad_topic, unsupported); the message says it
    in words."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Fix:
    device: str                          # "owntracks:USER/DEVICE", "osmand:ID" or "unit:UNIT_ID"
    fix_time: dt.datetime                # UTC, timezone-aware
    lat: float
    lon: float
    accuracy_m: float | None = None
    altitude_m: float | None = None
    speed_mps: float | None = None       # OwnTracks km/h and OsmAnd knots converted
    course_deg: float | None = None
    battery_pct: float | None = None
    sos: bool = False


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """Not a position: a device going offline (OwnTracks last will), a region transition."""
    device: str
    kind: str                            # "offline", "enter", "leave"
    at: dt.datetime
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reading:
    """One telemetry reading of an IoT field device (citygrid/devices/{id}/telemetry): values
    by field as sent, checked against the device type's schema when the batch is written."""
    device_id: str
    ts: dt.datetime                      # UTC, timezone-aware
    values: dict[str, float | bool]
    units: dict[str, str] | None = None  # what the device says its values are in, when it says


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A device's birth message or last will (citygrid/devices/{id}/status)."""
    device_id: str
    online: bool
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class CommandAnswer:
    """A device's answer to a command (citygrid/devices/{id}/cmd/ack)."""
    device_id: str
    command_id: int
    ok: bool
    result: Any
    at: dt.datetime


def utc_from_epoch(value: float) -> dt.datetime:
    """Unix seconds, or milliseconds when the number is too big to be seconds."""
    if value > 1e11:
        value /= 1000.0
    return dt.datetime.fromtimestamp(value, dt.timezone.utc)


def check_time(t: dt.datetime, received_at: dt.datetime) -> dt.datetime:
    if t > received_at + MAX_FUTURE:
        raise DecodeError("future_timestamp", f"fix time {t.isoformat()} is in the future"
                          f" (received {received_at.isoformat()}); check the device clock")
    if t < received_at - MAX_AGE:
        raise DecodeError("ancient_timestamp", f"fix time {t.isoformat()} is more than"
                          f" {MAX_AGE.days} days before it was received")
    return t


# --- Shared checks for the decoders --------------------------------------------------------
# One place for the rules every decoder follows, so a message refused by one decoder for a
# reason is refused by the others for the same reason, in the same words.

def show(value: Any) -> str:
    """A value as a person would type it in JSON, cut short: for error messages."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_json(payload: bytes) -> Any:
    """Bytes to JSON, refusing oversized, non-UTF-8, non-JSON and NaN-bearing payloads
    (orjson: a third of json's time on the ingest path, and strict where json is lenient)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError("too_large", f"payload is {len(payload)} bytes;"
                          f" the limit is {MAX_PAYLOAD_BYTES}")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise DecodeError("bad_json", _why_not_json(bytes(payload), e)) from None


def _why_not_json(payload: bytes, error: orjson.JSONDecodeError) -> str:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"payload is not UTF-8 text (byte {e.start})"
    if "recursion" in error.msg:
        return "payload JSON is nested too deeply"
    if any(word in payload for word in (b"NaN", b"Infinity")) or "infinity" in error.msg:
        return "NaN and Infinity are not valid JSON; send finite numbers only"
    return f"payload is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"


def as_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecodeError("bad_type", f"{what} must be a JSON object, got {show(value)}")
    return value


def require(obj: Mapping[str, Any], key: str) -> Any:
    """A required field; null and (for form fields) blank count as missing."""
    value = obj.get(key)
    if value is None or value == "":
        raise DecodeError("missing_field", f'required field "{key}" is missing')
    return value


def string(value: Any, name: str, *, max_len: int = 200) -> str:
    """Non-blank text of sane length: names, ids, region descriptions."""
    if not isinstance(value, str) or not value.strip():
        raise DecodeError("bad_type", f'"{name}" must be non-empty text, got {show(value)}')
    if len(value) > max_len:
        raise DecodeError("bad_type", f'"{name}" is longer than {max_len} characters')
    return value


def number(value: Any, name: str, *, text: bool = False, reason: str = "bad_type") -> float:
    """A finite real number. bool is refused (JSON true is not 1); strings only when
    `text` is set, for query parameters, which are strings by nature."""
    if isinstance(value, str) and text:
        try:
            result = float(value.strip())
        except ValueError:
            result = None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        result = float(value)
    else:
        result = None
    if result is None:
        raise DecodeError(reason, f'"{name}" must be a number, got {show(value)}')
    if not math.isfinite(result):
        raise DecodeError(reason, f'"{name}" must be a finite number, got {show(value)}')
    return result


def optional_number(value: Any, name: str, *, lo: float | None = None,
                    hi: float | None = None, negative_unknown: bool = False,
                    text: bool = False) -> float | None:
    """An optional measurement. `negative_unknown`: phone location APIs report -1 for a
    speed, course or battery level they do not know; that is "no value", not an error."""
    if value is None or (text and value == ""):
        return None
    result = number(value, name, text=text)
    if negative_unknown and result < 0:
        return None
    if (lo is not None and result < lo) or (hi is not None and result > hi):
        bounds = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise DecodeError("bad_type", f'"{name}" must be {bounds}, got {show(value)}')
    return result


def coordinate(value: Any, name: str, lo: float, hi: float, *, text: bool = False) -> float:
    if value is None or (text and value == ""):
        raise DecodeError("missing_field", f'required field "{name}" is missing')
    result = number(value, name, text=text, reason="bad_coordinates")
    if not lo <= result <= hi:
        raise DecodeError("bad_coordinates", f'"{name}" must be between {lo:g} and {hi:g},'
                          f" got {show(value)}")
    return result


def lat_lon(lat: Any, lon: Any, *, text: bool = False) -> tuple[float, float]:
    return (coordinate(lat, "lat", -90, 90, text=text),
            coordinate(lon, "lon", -180, 180, text=text))


def parse_time(value: Any, name: str, *, iso: bool = True,
               text_epoch: bool = False) -> dt.datetime:
    """Unix seconds or milliseconds, or (if `iso`) an ISO 8601 string with a UTC offset:
    a time without one is refused rather than guessed, since guessing the zone wrong moves
    a patrol's track by hours."""
    if isinstance(value, str) and text_epoch:
        try:
            value = float(value.strip())
        except ValueError:
            pass
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or value <= 0:
            raise DecodeError("bad_timestamp", f'"{name}" is not a Unix time: {show(value)}')
        try:
            return utc_from_epoch(float(value))
        except (OverflowError, OSError, ValueError):
            raise DecodeError("bad_timestamp", f'"{name}" is out of range: {show(value)}') from None
    if isinstance(value, str) and iso:
        try:
            t = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise DecodeError("bad_timestamp", f'"{name}" is not an ISO 8601 time:'
                              f" {show(value)}") from None
        if t.tzinfo is None or t.utcoffset() is None:
            raise DecodeError("bad_timestamp", f'"{name}" has no UTC offset: {show(value)};'
                              ' add "Z" or e.g. "+08:00"')
        return t.astimezone(dt.timezone.utc)
    kind = "a Unix time or ISO 8601 string" if iso else "a Unix time in seconds"
    raise DecodeError("bad_type", f'"{name}" must be {kind}, got {show(value)}')


def fix_time(value: Any, name: str, received_at: dt.datetime, *, iso: bool = True,
             text_epoch: bool = False) -> dt.datetime:
    """A required timestamp, parsed and checked against the time the message arrived."""
    if value is None or value == "":
        raise DecodeError("missing_field", f'required field "{name}" is missing')
    return check_time(parse_time(value, name, iso=iso, text_epoch=text_epoch), received_at)


def decode_batch(items: Sequence[Any], decode_one: Callable[[Any], _T], label: str) -> list[_T]:
    """All or nothing: one bad element refuses the whole message, naming that element."""
    if not items:
        raise DecodeError("bad_type", f"empty batch: expected at least one {label}")
    out = []
    for i, item in enumerate(items, 1):
        try:
            out.append(decode_one(item))
        except DecodeError as e:
            raise DecodeError(e.reason, f"{label} {i} of {len(items)}: {e}") from None
    return out
