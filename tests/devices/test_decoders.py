"""Decoders against payloads written the way the apps send them, and a corpus of broken
ones: every broken message must raise DecodeError with the expected reason, never crash
the pipeline with some other exception. Pure Python: no database, no broker."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from devices.decoders import native, osmand, owntracks
from devices.fix import MAX_PAYLOAD_BYTES, DecodeError, DeviceEvent, Fix

UTC = dt.timezone.utc
RECEIVED = dt.datetime(2026, 3, 2, 2, 0, 0, tzinfo=UTC)
NOW = int(RECEIVED.timestamp())                      # 1772416800
PAYLOADS = Path(__file__).parent / "payloads"
INDEX = json.loads((PAYLOADS / "index.json").read_text())
OT_TOPIC = "owntracks/zhangwei/pixel7"
UNIT_TOPIC = "citygrid/units/42/pos"


def at(h: int, m: int, s: int = 0, us: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, 2, h, m, s, us, tzinfo=UTC)


def params(query: str | bytes) -> dict[str, str]:
    """What the HTTP layer hands decode_params: a GET query or form body, split."""
    if isinstance(query, bytes):
        query = query.decode("latin-1")
    return dict(parse_qsl(query, keep_blank_values=True))


def replay(name: str) -> list[Fix | DeviceEvent]:
    """Decode a stored sample the way the pipeline will, using index.json."""
    entry, raw = INDEX[name], (PAYLOADS / name).read_bytes()
    match entry["decoder"]:
        case "owntracks":
            return owntracks.decode(entry["topic"], raw, RECEIVED)
        case "native":
            return native.decode(entry["topic"], raw, RECEIVED)
        case "osmand_json":
            return osmand.decode_json(raw, RECEIVED)
        case "osmand_params":
            return osmand.decode_params(params(raw), RECEIVED)
    raise AssertionError(entry)


def assert_fixes(actual: list, expected: list[Fix]) -> None:
    """Exact on everything but float rounding in unit conversions."""
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        assert isinstance(got, Fix)
        assert got.fix_time.tzinfo is not None and got.fix_time.utcoffset() == dt.timedelta(0)
        for f in dataclasses.fields(Fix):
            g, w = getattr(got, f.name), getattr(want, f.name)
            if isinstance(w, float):
                assert g == pytest.approx(w, rel=1e-9), f.name
            else:
                assert g == w, f.name


# --- Realistic payloads -------------------------------------------------------------------

def test_index_lists_every_sample_and_all_decode():
    on_disk = {p.name for p in PAYLOADS.iterdir() if p.name != "index.json"}
    assert on_disk == set(INDEX)
    assert all(replay(name) for name in INDEX)


def test_owntracks_android_location():
    assert_fixes(replay("owntracks_android_location.json"), [Fix(
        device="owntracks:zhangwei/pixel7", fix_time=at(1, 59), lat=30.274085, lon=120.15507,
        accuracy_m=12.0, altitude_m=18.0, speed_mps=5.0,  # 18 km/h
        course_deg=92.0, battery_pct=76.0, sos=False)])


def test_owntracks_ios_location_unknown_speed_and_course_manual_trigger_is_not_sos():
    assert_fixes(replay("owntracks_ios_location.json"), [Fix(
        device="owntracks:linan/iphone", fix_time=at(1, 55), lat=30.2592, lon=120.1302,
        accuracy_m=5.0, altitude_m=12.0, speed_mps=None, course_deg=None, battery_pct=54.0,
        sos=False)])


@pytest.mark.parametrize("field, value, sos", [("poi", "SOS", True), ("tag", " 求救 ", True), ("poi", "sos", True),
                                               ("poi", "公厕", False), ("tag", 1, False)])
def test_owntracks_point_named_sos_is_an_sos(field, value, sos):
    payload = {"_type": "location", "lat": 27.0, "lon": 113.3, "tst": NOW - 5, "t": "u", field: value}
    [fix] = owntracks.decode("owntracks/li/phone", json.dumps(payload).encode(), RECEIVED)
    assert fix.sos is sos


def test_owntracks_lwt_is_offline_dated_on_arrival():
    [event] = replay("owntracks_lwt.json")
    assert event == DeviceEvent(device="owntracks:zhangwei/pixel7", kind="offline",
                                at=RECEIVED,
                                detail={"connected_at": "2026-02-27T02:00:00+00:00"})


def test_owntracks_transition_on_event_topic():
    [event] = replay("owntracks_transition.json")
    assert event == DeviceEvent(
        device="owntracks:zhangwei/pixel7", kind="enter", at=at(1, 57),
        detail={"region": "Wulin Square grid 12", "region_id": "f3a9c1", "lat": 30.2723,
                "lon": 120.1617, "accuracy_m": 10.0,
                "region_created_at": "2026-02-24T08:00:00+00:00", "trigger": "c"})


def test_owntracks_leave_and_minimal_location():
    payload = b'{"_type":"transition","event":"leave","tst":%d}' % (NOW - 5)
    [event] = owntracks.decode(OT_TOPIC + "/event", payload, RECEIVED)
    assert (event.kind, event.at, event.detail) == ("leave", at(1, 59, 55), {})
    minimal = b'{"_type":"location","lat":-33.8688,"lon":151.2093,"tst":%d}' % NOW
    assert_fixes(owntracks.decode(OT_TOPIC, minimal, RECEIVED), [Fix(
        device="owntracks:zhangwei/pixel7", fix_time=RECEIVED, lat=-33.8688, lon=151.2093)])


@pytest.mark.parametrize("kind", ["waypoint", "waypoints", "card", "status", "cmd", "steps",
                                  "beacon", "request", "configuration"])
def test_owntracks_non_position_types_are_understood_and_dropped(kind):
    assert owntracks.decode(OT_TOPIC, json.dumps({"_type": kind}).encode(), RECEIVED) == []


def test_osmand_query_speed_in_knots():
    assert_fixes(replay("osmand_query.txt"), [Fix(
        device="osmand:123456", fix_time=at(1, 59), lat=30.274085, lon=120.15507,
        accuracy_m=8.0, altitude_m=17.3, speed_mps=5.14444,  # 10 kn
        course_deg=181.5, battery_pct=64.0, sos=False)])


def test_osmand_location_param_iso_time_heading_and_unknown_keys():
    assert_fixes(replay("osmand_location_param.txt"), [Fix(
        device="osmand:patrol-07", fix_time=at(1, 58, 30), lat=30.2592, lon=120.1302,
        course_deg=45.0)])


def test_osmand_alarm_sos_ms_timestamp_and_unknown_speed():
    assert_fixes(replay("osmand_alarm_sos.txt"), [Fix(
        device="osmand:123456", fix_time=at(1, 59, 50), lat=30.2701, lon=120.1633,
        accuracy_m=15.0, speed_mps=None, course_deg=None, battery_pct=31.0, sos=True)])


def test_osmand_other_alarm_is_not_sos_and_not_an_error():
    q = f"id=9&timestamp={NOW}&lat=30.1&lon=120.1&alarm=lowBattery"
    [fix] = osmand.decode_params(params(q), RECEIVED)
    assert fix.sos is False and fix.device == "osmand:9"


def test_osmand_offset_time_whose_plus_was_lost_in_the_query_string():
    # An unencoded "+08:00" arrives as " 08:00"; it must still mean UTC+8.
    q = "id=9&timestamp=2026-03-02T09:59:00+08:00&lat=30.1&lon=120.1"
    [fix] = osmand.decode_params(params(q), RECEIVED)
    assert fix.fix_time == at(1, 59)


def test_osmand_json_single():
    assert_fixes(replay("osmand_json_single.json"), [Fix(
        device="osmand:48241179", fix_time=at(1, 59, 30, 250000), lat=30.274085,
        lon=120.15507, accuracy_m=6.4, altitude_m=17.8, speed_mps=4.2,  # m/s here
        course_deg=88.5, battery_pct=85.0, sos=False)])


def test_osmand_json_batch():
    dev = "osmand:48241179"
    assert_fixes(replay("osmand_json_batch.json"), [
        Fix(device=dev, fix_time=at(1, 50), lat=30.2701, lon=120.1633, accuracy_m=9.0,
            altitude_m=15.0, speed_mps=1.3, course_deg=10.0, battery_pct=62.0),
        Fix(device=dev, fix_time=at(1, 55), lat=30.2712, lon=120.1641, accuracy_m=35.0,
            altitude_m=16.0, speed_mps=None, course_deg=None, battery_pct=None),
        Fix(device=dev, fix_time=at(1, 56, 10, 500000), lat=30.2715, lon=120.1645,
            accuracy_m=4.0, altitude_m=16.5, speed_mps=0.0, course_deg=0.0,
            battery_pct=60.0, sos=True),
    ])


def test_native_single_with_offset_time():
    assert_fixes(replay("native_single.json"), [Fix(
        device="unit:42", fix_time=at(1, 59, 10), lat=30.2741, lon=120.1551, accuracy_m=4.5,
        altitude_m=16.0, speed_mps=1.4, course_deg=270.0, battery_pct=88.0, sos=False)])


def test_native_batch_seconds_millis_and_iso():
    assert_fixes(replay("native_batch.json"), [
        Fix(device="unit:42", fix_time=at(1, 50), lat=30.2741, lon=120.1551, accuracy_m=5.0,
            speed_mps=1.2, course_deg=90.0, battery_pct=80.0),
        Fix(device="unit:42", fix_time=at(1, 55, 0, 250000), lat=30.2745, lon=120.156,
            accuracy_m=6.0, altitude_m=15.5, speed_mps=1.5, course_deg=92.5,
            battery_pct=80.0),
        Fix(device="unit:42", fix_time=at(1, 58), lat=30.275, lon=120.157, sos=True),
    ])


def test_time_limits_are_inclusive_edges():
    # 10 min ahead and 7 days old are still taken; the corpus below refuses just past them.
    for ts in (NOW + 600, NOW - 7 * 86400):
        [fix] = native.decode(UNIT_TOPIC, b'{"ts":%d,"lat":0,"lon":0}' % ts, RECEIVED)
        assert fix.fix_time == dt.datetime.fromtimestamp(ts, UTC)


# --- Malformed corpus ---------------------------------------------------------------------

def ot(**fields) -> bytes:
    base = {"_type": "location", "lat": 30.27, "lon": 120.15, "tst": NOW - 60}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def nat(**fields) -> bytes:
    base = {"ts": NOW - 60, "lat": 30.27, "lon": 120.15}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def tc(**loc) -> dict:
    base = {"timestamp": "2026-03-02T01:59:00Z",
            "coords": {"latitude": 30.27, "longitude": 120.15}}
    base.update(loc)
    return {k: v for k, v in base.items() if v is not ...}


def tcj(location=None, **root) -> bytes:
    body = {"device_id": "48241179", "location": tc() if location is None else location}
    body.update(root)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


Q = f"id=123456&timestamp={NOW - 60}&lat=30.27&lon=120.15"
HUGE = b'{"_type":"location","pad":"' + b"x" * MAX_PAYLOAD_BYTES + b'"}'

CORPUS = [
    # OwnTracks: (decoder, topic, payload, reason)
    ("owntracks", OT_TOPIC, b'{"_type":"location","lat":30.27,', "bad_json"),
    ("owntracks", OT_TOPIC, b"hello", "bad_json"),
    ("owntracks", OT_TOPIC, b"", "bad_json"),
    ("owntracks", OT_TOPIC, b'\xff\xfe{"_type":"lwt"}', "bad_json"),
    ("owntracks", OT_TOPIC, '{"_type":"lwt","x":"\u00e9"}'.encode("latin-1"), "bad_json"),
    ("owntracks", OT_TOPIC, b"[" * 100_000, "bad_json"),
    ("owntracks", OT_TOPIC, b'[{"_type":"location"}]', "bad_type"),
    ("owntracks", OT_TOPIC, b'"location"', "bad_type"),
    ("owntracks", OT_TOPIC, b"null", "bad_type"),
    ("owntracks", OT_TOPIC, ot(_type=...), "missing_field"),
    ("owntracks", OT_TOPIC, ot(_type="position"), "unknown_type"),
    ("owntracks", OT_TOPIC, ot(_type=7), "unknown_type"),
    ("owntracks", OT_TOPIC, ot(_type=["location"]), "unknown_type"),
    ("owntracks", OT_TOPIC, b'{"_type":"encrypted","data":"aGVsbG8="}', "unsupported"),
    ("owntracks", OT_TOPIC, ot(lat=...), "missing_field"),
    ("owntracks", OT_TOPIC, ot(lon=...), "missing_field"),
    ("owntracks", OT_TOPIC, ot(tst=...), "missing_field"),
    ("owntracks", OT_TOPIC, ot(lat=None), "missing_field"),
    ("owntracks", OT_TOPIC, ot(lat="x"), "bad_coordinates"),
    ("owntracks", OT_TOPIC, ot(lat="30.27"), "bad_coordinates"),
    ("owntracks", OT_TOPIC, ot(lat=True), "bad_coordinates"),
    ("owntracks", OT_TOPIC, ot(lon=[120.15]), "bad_coordinates"),
    ("owntracks", OT_TOPIC, b'{"_type":"location","lat":NaN,"lon":1,"tst":%d}' % NOW,
     "bad_json"),
    ("owntracks", OT_TOPIC, b'{"_type":"location","lat":1,"lon":-Infinity,"tst":%d}' % NOW,
     "bad_json"),
    ("owntracks", OT_TOPIC, b'{"_type":"location","lat":1e999,"lon":1,"tst":%d}' % NOW,
     "bad_json"),                                       # overflows a double: not a number at all
    ("owntracks", OT_TOPIC, ot(lat=90.0001), "bad_coordinates"),
    ("owntracks", OT_TOPIC, ot(lon=-180.5), "bad_coordinates"),
    ("owntracks", OT_TOPIC, ot(tst=str(NOW)), "bad_type"),
    ("owntracks", OT_TOPIC, ot(tst=True), "bad_type"),
    ("owntracks", OT_TOPIC, ot(tst=0), "bad_timestamp"),
    ("owntracks", OT_TOPIC, ot(tst=-5), "bad_timestamp"),
    ("owntracks", OT_TOPIC, ot(tst=10**30), "bad_timestamp"),
    ("owntracks", OT_TOPIC, ot(tst=NOW + 601), "future_timestamp"),
    ("owntracks", OT_TOPIC, ot(tst=NOW - 8 * 86400), "ancient_timestamp"),
    ("owntracks", OT_TOPIC, ot(acc=-1), "bad_type"),
    ("owntracks", OT_TOPIC, ot(acc="12"), "bad_type"),
    ("owntracks", OT_TOPIC, ot(batt=150), "bad_type"),
    ("owntracks", OT_TOPIC, ot(vel="fast"), "bad_type"),
    ("owntracks", OT_TOPIC, ot(cog=400), "bad_type"),
    ("owntracks", OT_TOPIC, b'{"_type":"location","lat":1,"lon":1,"alt":NaN,"tst":%d}' % NOW,
     "bad_json"),
    ("owntracks", OT_TOPIC, ot(_type="transition", event="exit"), "bad_type"),
    ("owntracks", OT_TOPIC, ot(_type="transition"), "missing_field"),
    ("owntracks", OT_TOPIC, ot(_type="transition", event="enter", tst=...), "missing_field"),
    ("owntracks", OT_TOPIC, ot(_type="transition", event="enter", desc=5), "bad_type"),
    ("owntracks", OT_TOPIC, b'{"_type":"lwt","tst":"soon"}', "bad_type"),
    ("owntracks", OT_TOPIC, HUGE, "too_large"),
    ("owntracks", "owntracks/zhangwei", ot(), "bad_topic"),
    ("owntracks", "owntracks/zhangwei/pixel7/nonsense", ot(), "bad_topic"),
    ("owntracks", "owntracks/a/b/event/x", ot(), "bad_topic"),
    ("owntracks", "tracks/zhangwei/pixel7", ot(), "bad_topic"),
    ("owntracks", "owntracks//pixel7", ot(), "bad_topic"),
    ("owntracks", "owntracks/+/pixel7", ot(), "bad_topic"),
    ("owntracks", "", ot(), "bad_topic"),
    # Native
    ("native", UNIT_TOPIC, b"[]", "bad_type"),
    ("native", UNIT_TOPIC, b"[1]", "bad_type"),
    ("native", UNIT_TOPIC, b"null", "bad_type"),
    ("native", UNIT_TOPIC, b'"30.27,120.15"', "bad_type"),
    ("native", UNIT_TOPIC, b'{"ts":1772416740,"lat":30.27', "bad_json"),
    ("native", UNIT_TOPIC, b"\xc3\x28", "bad_json"),
    ("native", UNIT_TOPIC, b'{"ts":%d,"lat":Infinity,"lon":1}' % NOW, "bad_json"),
    ("native", UNIT_TOPIC, b'[' + nat() + b',' + nat() + b',' + nat(lat=-91) + b']',
     "bad_coordinates"),
    ("native", UNIT_TOPIC, nat(ts=...), "missing_field"),
    ("native", UNIT_TOPIC, nat(lat=...), "missing_field"),
    ("native", UNIT_TOPIC, nat(lat=None), "missing_field"),
    ("native", UNIT_TOPIC, nat(lat="30.27"), "bad_coordinates"),
    ("native", UNIT_TOPIC, nat(lon=False), "bad_coordinates"),
    ("native", UNIT_TOPIC, nat(lon=180.0001), "bad_coordinates"),
    ("native", UNIT_TOPIC, nat(ts="2026-03-02T01:59:00"), "bad_timestamp"),
    ("native", UNIT_TOPIC, nat(ts="yesterday"), "bad_timestamp"),
    ("native", UNIT_TOPIC, nat(ts=True), "bad_type"),
    ("native", UNIT_TOPIC, nat(ts={"s": NOW}), "bad_type"),
    ("native", UNIT_TOPIC, nat(ts=(NOW + 3600) * 1000), "future_timestamp"),
    ("native", UNIT_TOPIC, nat(ts="2026-03-02T10:11:00+08:00"), "future_timestamp"),
    ("native", UNIT_TOPIC, nat(ts="1999-12-31T23:59:59Z"), "ancient_timestamp"),
    ("native", UNIT_TOPIC, nat(sos="yes"), "bad_type"),
    ("native", UNIT_TOPIC, nat(sos=1), "bad_type"),
    ("native", UNIT_TOPIC, nat(speed=-1), "bad_type"),
    ("native", UNIT_TOPIC, nat(course=361), "bad_type"),
    ("native", UNIT_TOPIC, nat(acc=-0.5), "bad_type"),
    ("native", UNIT_TOPIC, nat(batt=True), "bad_type"),
    ("native", UNIT_TOPIC, nat(alt="high"), "bad_type"),
    ("native", UNIT_TOPIC, b"[" + b",".join([nat()] * 6000) + b"]", "too_large"),
    ("native", "citygrid/units/0/pos", nat(), "bad_topic"),
    ("native", "citygrid/units/-3/pos", nat(), "bad_topic"),
    ("native", "citygrid/units/007/pos", nat(), "bad_topic"),
    ("native", "citygrid/units/abc/pos", nat(), "bad_topic"),
    ("native", "citygrid/units/\uff14\uff12/pos", nat(), "bad_topic"),
    ("native", "citygrid/units/42/position", nat(), "bad_topic"),
    ("native", "citygrid/units/42/pos/x", nat(), "bad_topic"),
    ("native", "citygrid/units/42", nat(), "bad_topic"),
    ("native", "citygrid/units/1234567890123456789/pos", nat(), "bad_topic"),
    # Traccar Client JSON
    ("osmand_json", None, tcj(device_id=...), "missing_field"),
    ("osmand_json", None, tcj(device_id=True), "bad_type"),
    ("osmand_json", None, tcj(device_id=""), "missing_field"),
    ("osmand_json", None, tcj(location=...), "missing_field"),
    ("osmand_json", None, tcj(location=[]), "bad_type"),
    ("osmand_json", None, tcj(location="30.27,120.15"), "bad_type"),
    ("osmand_json", None, tcj(tc(coords=...)), "missing_field"),
    ("osmand_json", None, tcj(tc(coords=[30.27, 120.15])), "bad_type"),
    ("osmand_json", None, tcj(tc(coords={"latitude": "30.27", "longitude": 120.15})),
     "bad_coordinates"),
    ("osmand_json", None, tcj(tc(coords={"latitude": 30.27})), "missing_field"),
    ("osmand_json", None, tcj(tc(timestamp=...)), "missing_field"),
    ("osmand_json", None, tcj(tc(timestamp="2026-03-02 01:59:00")), "bad_timestamp"),
    ("osmand_json", None, tcj(tc(timestamp="2026-03-09T01:59:00Z")), "future_timestamp"),
    ("osmand_json", None, tcj(tc(battery={"level": 85})), "bad_type"),
    ("osmand_json", None, tcj(tc(battery=0.85)), "bad_type"),
    ("osmand_json", None, tcj(tc(coords={"latitude": 1, "longitude": 1, "accuracy": -3})),
     "bad_type"),
    ("osmand_json", None, tcj([tc(), tc(coords={"latitude": 1, "longitude": 200})]),
     "bad_coordinates"),
    ("osmand_json", None, b'{"device_id":"1","location":{"coords":{"latitude":NaN}}}',
     "bad_json"),
    ("osmand_json", None, b"device_id=1&lat=30", "bad_json"),
    ("osmand_json", None, b'{"location":{},"device_id":"1"', "bad_json"),
    ("osmand_json", None, b"\x80abc", "bad_json"),
    ("osmand_json", None, HUGE, "too_large"),
    # OsmAnd query / form parameters
    ("osmand_params", None, Q.replace("id=123456&", ""), "missing_field"),
    ("osmand_params", None, Q.replace("id=123456", "id="), "missing_field"),
    ("osmand_params", None, "id=1&lat=30.27&lon=120.15", "missing_field"),
    ("osmand_params", None, Q.replace(f"timestamp={NOW - 60}", "timestamp="), "missing_field"),
    ("osmand_params", None, Q.replace("&lat=30.27", ""), "missing_field"),
    ("osmand_params", None, f"id=1&timestamp={NOW}", "missing_field"),
    ("osmand_params", None, Q.replace("lat=30.27", "lat=abc"), "bad_coordinates"),
    ("osmand_params", None, Q.replace("lat=30.27", "lat=nan"), "bad_coordinates"),
    ("osmand_params", None, Q.replace("lon=120.15", "lon=-inf"), "bad_coordinates"),
    ("osmand_params", None, Q.replace("lat=30.27", "lat=95"), "bad_coordinates"),
    ("osmand_params", None, f"id=1&timestamp={NOW}&location=30.27", "bad_coordinates"),
    ("osmand_params", None, f"id=1&timestamp={NOW}&location=30.27,120.1,5", "bad_coordinates"),
    ("osmand_params", None, f"id=1&timestamp={NOW}&location=30.27,x", "bad_coordinates"),
    ("osmand_params", None, Q.replace(f"{NOW - 60}", "yesterday"), "bad_timestamp"),
    ("osmand_params", None, Q.replace(f"{NOW - 60}", "2026-03-02 01:59:00"), "bad_timestamp"),
    ("osmand_params", None, Q.replace(f"{NOW - 60}", "nan"), "bad_timestamp"),
    ("osmand_params", None, Q.replace(f"{NOW - 60}", f"{NOW + 3600}"), "future_timestamp"),
    ("osmand_params", None, Q.replace(f"{NOW - 60}", f"{(NOW - 30 * 86400) * 1000}"),
     "ancient_timestamp"),
    ("osmand_params", None, Q + "&accuracy=-5", "bad_type"),
    ("osmand_params", None, Q + "&batt=abc", "bad_type"),
    ("osmand_params", None, Q + "&batt=101", "bad_type"),
    ("osmand_params", None, Q + "&bearing=400", "bad_type"),
    ("osmand_params", None, Q + "&speed=nan", "bad_type"),
    ("osmand_params", None, Q + "&altitude=1e999", "bad_type"),
    ("osmand_params", None, Q + "&pad=" + "x" * MAX_PAYLOAD_BYTES, "too_large"),
]


def _decode(decoder: str, topic: str | None, payload: bytes | str):
    if decoder == "owntracks":
        return owntracks.decode(topic, payload, RECEIVED)
    if decoder == "native":
        return native.decode(topic, payload, RECEIVED)
    if decoder == "osmand_json":
        return osmand.decode_json(payload, RECEIVED)
    return osmand.decode_params(params(payload), RECEIVED)


@pytest.mark.parametrize("decoder,topic,payload,reason", CORPUS,
                         ids=[f"{i:03d}-{c[0]}-{c[3]}" for i, c in enumerate(CORPUS)])
def test_malformed_is_refused_with_reason(decoder, topic, payload, reason):
    with pytest.raises(DecodeError) as err:
        _decode(decoder, topic, payload)
    assert err.value.reason == reason, str(err.value)
    assert str(err.value)                 # a sentence for the dead-letter table


def test_error_messages_name_the_problem():
    def message(decoder, topic, payload):
        with pytest.raises(DecodeError) as err:
            _decode(decoder, topic, payload)
        return str(err.value)

    assert message("owntracks", OT_TOPIC, ot(lat="abc")) == '"lat" must be a number, got "abc"'
    assert message("owntracks", OT_TOPIC, ot(lat=True)) == '"lat" must be a number, got true'
    assert message("owntracks", OT_TOPIC, ot(tst=...)) == 'required field "tst" is missing'
    assert "encryption key" in message("owntracks", OT_TOPIC, b'{"_type":"encrypted"}')
    batch = b"[" + nat() + b"," + nat() + b"," + nat(lon=181) + b"]"
    assert message("native", UNIT_TOPIC, batch).startswith('fix 3 of 3: "lon" must be between')
    body = tcj([tc(), tc(timestamp=...)])
    assert message("osmand_json", None, body) == 'location 2 of 2: required field "timestamp"' \
                                                 " is missing"
    assert "UTC offset" in message("native", UNIT_TOPIC, nat(ts="2026-03-02T01:59:00"))
    assert "check the device clock" in message("native", UNIT_TOPIC, nat(ts=NOW + 3600))


@pytest.mark.parametrize("name", sorted(INDEX))
def test_every_truncation_of_a_sample_decodes_or_is_refused(name):
    """Cut-off messages (a dropped connection, a full buffer) never raise anything else."""
    entry, raw = INDEX[name], (PAYLOADS / name).read_bytes()
    outcomes = set()
    for end in range(len(raw)):
        try:
            _decode(entry["decoder"], entry.get("topic"), raw[:end])
            outcomes.add("ok")
        except DecodeError as e:
            outcomes.add(e.reason)
    assert outcomes - {"ok"}, "some truncations must be refused"
