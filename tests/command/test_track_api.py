"""GET /api/units/{id}/track and the replay page: the answer's shape, who may see which unit,
and the messages for a wrong window or zoom."""
from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest

from command.routes.track_routes import window
from devices import partitions
from devices.registry import add_unit
from gis.errors import Invalid
from tests.devices.test_tracks import T0, patrol_morning, put_fixes
from workflows.cases import LOCAL_TZ

DAY_FROM, DAY_TO = "2026-05-04T00:00:00+08:00", "2026-05-05T00:00:00+08:00"


@pytest.fixture
def patrol(db, tiny_city):
    """A unit of the water company with a morning's track, and an alarm on the way."""
    unit_id = add_unit(db, name="监督员张三", kind="inspector", actor="test", dept=tiny_city["water_dept"],
                       devices=["osmand:t1"])
    walk = patrol_morning()
    put_fixes(db, unit_id, walk["times"], walk["lon"], walk["lat"], flags=walk["flags"])
    db.execute("INSERT INTO unit_alarm (unit_id, kind, since, raised_at, lon, lat, message)"
               " VALUES (%s, 'stationary', %s, %s, 113.3433, 27.0005, '停留超时')",
               (unit_id, T0 + dt.timedelta(minutes=5), T0 + dt.timedelta(minutes=12)))
    return unit_id


def _track(client, headers, unit_id, **params):
    params = {"from": DAY_FROM, "to": DAY_TO, **params}
    return client.get(f"/api/units/{unit_id}/track", params=params, headers=headers)


def test_the_answer(client, login, patrol):
    r = _track(client, login("admin"), patrol, zoom=17)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"unit", "from", "to", "zoom", "tolerance_m", "fixes", "bad_fixes", "points", "first_fix",
                         "last_fix", "distance_m", "track", "stops", "gaps", "alarms"}
    assert body["unit"] == {"id": patrol, "name": "监督员张三", "kind": "inspector"}
    assert (body["from"], body["to"], body["zoom"]) == (DAY_FROM, DAY_TO, 17)
    assert (body["fixes"], body["bad_fixes"]) == (1450, 3)
    assert body["first_fix"] == "2026-05-04T09:00:00+08:00"
    assert set(body["track"]) == {"t", "lon", "lat", "speed"}
    assert all(len(v) == body["points"] for v in body["track"].values())
    assert body["track"]["speed"][0] == body["track"]["speed"][-1] == 1.2          # m/s, walking
    assert np.cumsum(body["track"]["lon"])[0] == round(113.34 * 1e6)
    [stop] = body["stops"]
    assert set(stop) == {"start", "end", "duration_s", "lon", "lat", "fixes", "index"}
    [gap] = body["gaps"]
    assert set(gap) == {"start", "end", "duration_s", "index"} and gap["duration_s"] == 901
    [alarm] = body["alarms"]
    assert alarm["kind"] == "stationary" and alarm["message"] == "停留超时"
    assert alarm["raised_at"] == "2026-05-04T09:12:00+08:00"
    assert 1200 < body["distance_m"] < 1240


def test_a_coarser_zoom_sends_fewer_points(client, login, db, patrol):
    headers = login("admin")
    # A wiggly walk, so that the zoom matters.
    times = [T0 + dt.timedelta(hours=3, seconds=k) for k in range(600)]
    k = np.arange(600)
    put_fixes(db, patrol, times, 113.341 + k * 1e-5, 27.0005 + 3e-5 * np.sin(k / 5))
    points = {z: _track(client, headers, patrol, zoom=z).json()["points"] for z in (12, 16, 20)}
    assert points[12] < points[16] < points[20]
    # Big answers travel gzipped to those who take it.
    r = _track(client, {**headers, "Accept-Encoding": "gzip"}, patrol, zoom=20)
    assert r.headers["content-encoding"] == "gzip" and r.json()["points"] == points[20]


def test_who_sees_which_unit(client, login, db, patrol, tiny_city):
    assert _track(client, login("department", dept=tiny_city["water_dept"]), patrol).status_code == 200
    r = _track(client, login("department", dept=tiny_city["city_dept"]), patrol)
    assert r.status_code == 404 and "not in your department" in r.json()["message"]
    assert _track(client, login("dispatcher"), patrol).status_code == 200
    # An inspector sees their own unit only.
    own = login("inspector", username="zhang", areas=["430223001001"])
    assert _track(client, own, patrol).status_code == 404
    mine = add_unit(db, name="监督员王五", kind="inspector", actor="test", username="zhang")
    assert _track(client, own, mine).status_code == 200
    assert _track(client, {}, patrol).status_code == 401
    assert _track(client, login("admin"), 999999).status_code == 404


@pytest.mark.parametrize("params, words", [
    ({"from": "2026-05-04T00:00:00"}, "no time zone"),
    ({"from": "yesterday"}, "not an ISO 8601 time"),
    ({"from": DAY_TO, "to": DAY_FROM}, "must be after"),
    ({"from": DAY_FROM, "to": "2026-05-12T00:00:00+08:00"}, "at most 7 days"),
    ({"zoom": 23}, "zoom"),
    ({"zoom": "near"}, "zoom"),
])
def test_bad_requests_say_what_to_fix(client, login, patrol, params, words):
    r = _track(client, login("admin"), patrol, **params)
    assert r.status_code == 422 and words in r.json()["message"], r.text


def test_an_unencoded_plus_in_the_zone_is_read_as_meant(client, login, patrol):
    url = f"/api/units/{patrol}/track?from=2026-05-04T09:00:00+08:00&to=2026-05-04T09:10:00+08:00"
    body = client.get(url, headers=login("admin")).json()
    assert body["from"] == "2026-05-04T09:00:00+08:00" and (body["fixes"], body["bad_fixes"]) == (600, 1)


def test_the_window_by_default_is_today_in_china(client, login, db, patrol):
    now = dt.datetime.now(LOCAL_TZ)
    midnight = dt.datetime.combine(now.date(), dt.time(), LOCAL_TZ)
    partitions.ensure(db, now.date())
    put_fixes(db, patrol, [midnight + dt.timedelta(seconds=1)], [113.3405], [27.0005])
    body = client.get(f"/api/units/{patrol}/track", headers=login("admin")).json()
    assert body["from"] == midnight.isoformat() and body["fixes"] == 1


def test_one_end_means_a_day_from_it():
    start = dt.datetime(2026, 5, 4, 8, tzinfo=LOCAL_TZ)
    assert window("2026-05-04T08:00:00+08:00", None) == (start, start + dt.timedelta(days=1))
    assert window(None, "2026-05-04T08:00:00+08:00") == (start - dt.timedelta(days=1), start)
    assert window(None, None, now=dt.datetime(2026, 5, 3, 17, tzinfo=dt.timezone.utc))[0] == \
        dt.datetime(2026, 5, 4, tzinfo=LOCAL_TZ)                    # 01:00 on the 4th in China
    with pytest.raises(Invalid):
        window("2026-05-04T08:00:00Z", "2026-05-04T08:00:00Z")


def test_the_replay_page_is_served_and_self_contained(client):
    r = client.get("/units/7/replay")
    assert r.status_code == 200 and "/static/app/replay.js" in r.text and 'data-unit="7"' in r.text
    for path in ("/static/app/replay.js", "/static/app/replay.css"):
        assert client.get(path).status_code == 200
    for text in (r.text, client.get("/static/app/replay.js").text):
        assert re.findall(r"https?://(?!127\.0\.0\.1|localhost)[^\s\"')]+", text) == []
    assert client.get("/units/0/replay").status_code == 422
