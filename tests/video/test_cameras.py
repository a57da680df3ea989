"""The camera registry: view sectors, validation, grid derivation, audit, cameras_seeing."""
from __future__ import annotations

import math

import pytest

from gis.errors import Invalid, NotFound
from video.cameras import NewCamera, add_camera, cameras_seeing, get_camera, redact_url, update_zones

# tests/conftest.py's tiny city: four 0.001° grids side by side, lon 113.340…113.344, lat 27.000…27.001
MID_LAT = 27.0005
GATE = {"id": "gate", "purpose": "no_dumping", "points": [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9], [0.1, 0.9]]}


def cam(**kw) -> NewCamera:
    base = dict(name="联星路口", url="rtsp://10.0.0.5:554/main", lon=113.3415, lat=MID_LAT, bearing_deg=90.0,
                fov_deg=60.0, range_m=50.0)
    return NewCamera(**{**base, **kw})


def sector_facts(db, camera_id: int) -> dict:
    return db.execute(
        "SELECT ST_Area(sector::geography) AS area, ST_X(ST_Centroid(sector)) AS cx, ST_Y(ST_Centroid(sector)) AS cy,"
        " ST_XMin(sector) AS x0, ST_XMax(sector) AS x1, ST_YMin(sector) AS y0, ST_YMax(sector) AS y1,"
        " ST_Contains(sector, location) AS holds_camera, ST_IsValid(sector) AS valid,"
        " (SELECT max(ST_Distance(location::geography, ST_SetSRID(p.geom, 4326)::geography))"
        "    FROM ST_DumpPoints(sector) p) AS far,"
        " ST_X(location) AS lon, ST_Y(location) AS lat FROM camera WHERE id = %s", (camera_id,)).fetchone()


@pytest.mark.parametrize("fov, range_m", [(30, 50), (90, 100), (200, 80), (360, 40), (1, 300)])
def test_the_sector_area_is_the_circular_sectors(db, tiny_city, fov, range_m):
    row = add_camera(db, cam(fov_deg=fov, range_m=range_m), actor="test")
    facts = sector_facts(db, row["id"])
    expected = fov / 360 * math.pi * range_m ** 2
    assert facts["valid"]
    assert facts["area"] == pytest.approx(expected, rel=0.01)
    assert facts["far"] == pytest.approx(range_m, rel=0.001)        # arc points lie at the range (geodesic)


def test_bearing_90_looks_east_and_0_north(db, tiny_city):
    east = sector_facts(db, add_camera(db, cam(bearing_deg=90, fov_deg=60), actor="test")["id"])
    assert east["x0"] == pytest.approx(east["lon"], abs=1e-9)        # nothing west of the camera
    assert east["cx"] > east["lon"] and east["cy"] == pytest.approx(east["lat"], abs=1e-6)
    north = sector_facts(db, add_camera(db, cam(bearing_deg=0, fov_deg=60), actor="test")["id"])
    assert north["y0"] == pytest.approx(north["lat"], abs=1e-9)
    assert north["cy"] > north["lat"] and north["cx"] == pytest.approx(north["lon"], abs=1e-6)
    south_west = sector_facts(db, add_camera(db, cam(bearing_deg=225, fov_deg=20), actor="test")["id"])
    assert south_west["cx"] < south_west["lon"] and south_west["cy"] < south_west["lat"]


def test_a_360_degree_camera_sees_a_circle_around_itself(db, tiny_city):
    row = add_camera(db, cam(fov_deg=360, range_m=40), actor="test")
    facts = sector_facts(db, row["id"])
    assert facts["holds_camera"]                                   # the camera is inside, not on the edge
    assert facts["area"] == pytest.approx(math.pi * 40 ** 2, rel=0.01)
    assert facts["cx"] == pytest.approx(facts["lon"], abs=1e-6) and facts["cy"] == pytest.approx(facts["lat"], abs=1e-6)
    assert row["sector"]["type"] == "Polygon"


def test_the_grid_is_derived_and_the_camera_read_back(db, tiny_city):
    row = add_camera(db, cam(lon=113.3425, zones=[GATE], group="东片", height_m=6.5, dept=tiny_city["city_dept"]),
                     actor="test")
    assert row["grid_code"] == "430223001002001"
    assert row["zones"][0]["event_class"] == "0102"               # no_dumping → 暴露垃圾 by default
    assert (row["group"], row["height_m"], row["dept"]) == ("东片", 6.5, tiny_city["city_dept"])
    assert row["analysis_fps"] == 5 and row["active"] and row["online"] is None
    assert get_camera(db, row["id"])["lon"] == pytest.approx(113.3425)


def test_outside_the_city_is_refused_and_nothing_written(db, tiny_city):
    with pytest.raises(Invalid, match="outside every unit grid"):
        add_camera(db, cam(lon=113.35), actor="test")
    assert db.execute("SELECT count(*) AS n FROM camera").fetchone()["n"] == 0
    assert db.execute("SELECT count(*) AS n FROM audit_log WHERE entity = 'camera'").fetchone()["n"] == 0


@pytest.mark.parametrize("change, words", [
    ({"bearing_deg": 400}, "bearing: 400 is out of range"),
    ({"bearing_deg": -1}, "bearing"),
    ({"fov_deg": 0}, "fov: 0 is out of range"),
    ({"fov_deg": 361}, "fov"),
    ({"range_m": 1500}, "range: 1500 is out of range"),
    ({"range_m": float("nan")}, "range: a number is needed"),
    ({"lon": 200.0}, "lon"),
    ({"url": "ftp://10.0.0.5/x"}, "url: ftp:// is not a stream"),
    ({"url": ""}, "url: give the stream address"),
    ({"url": "rtsp:///stream"}, "names no host"),
    ({"url": "rtsp://10.0.0.5/a b"}, "no spaces"),
    ({"sub_url": "gopher://x"}, "sub_url"),
    ({"name": " "}, "name: 1-100 characters"),
    ({"height_m": -3}, "height"),
    ({"zones": {"id": "x"}}, "zones are a JSON list"),
    ({"zones": [{**GATE, "points": [[0.1, 0.1], [1.5, 0.2], [0.3, 0.9]]}]}, "zone 'gate': point"),
    ({"zones": [{**GATE, "event_class": "9999"}]}, "zone 'gate': event class 9999 is not in the catalog"),
    ({"dept": "不存在的局"}, "department '不存在的局' does not exist"),
])
def test_bad_input_is_refused_naming_the_field(db, tiny_city, change, words):
    with pytest.raises(Invalid) as refused:
        add_camera(db, cam(**change), actor="test")
    assert words in str(refused.value)
    assert db.execute("SELECT count(*) AS n FROM camera").fetchone()["n"] == 0


def test_file_paths_and_mjpeg_urls_are_streams(db, tiny_city):
    for url in ("/srv/streams/street.mp4", "file:///srv/streams/street.mp4", "http://10.0.0.9:8080/video.mjpg",
                "rtsps://cam.example:322/live"):
        assert add_camera(db, cam(url=url), actor="test")["url"] == url


def test_an_audit_row_is_written_and_passwords_never_shown(db, tiny_city):
    row = add_camera(db, cam(url="rtsp://admin:s3cret@10.0.0.5:554/main", sub_url="rtsp://admin:s3cret@10.0.0.5/sub"),
                     actor="admin1", actor_id=None)
    assert row["url"] == "rtsp://admin:***@10.0.0.5:554/main" and "s3cret" not in row["sub_url"]
    audit = db.execute("SELECT actor, action, entity_id, detail FROM audit_log WHERE entity = 'camera'").fetchall()
    assert [(a["actor"], a["action"], a["entity_id"]) for a in audit] == [("admin1", "camera.add", str(row["id"]))]
    assert audit[0]["detail"]["grid"] == "430223001001002" and "s3cret" not in str(audit[0]["detail"])
    # the worker reads the real URL from the table
    assert db.execute("SELECT url FROM camera WHERE id = %s", (row["id"],)).fetchone()["url"].startswith("rtsp://admin:s3cret@")
    assert redact_url(None) is None and redact_url("rtsp://host/x") == "rtsp://host/x"


def test_zones_are_replaced_with_an_audit_row_or_refused(db, tiny_city):
    camera_id = add_camera(db, cam(), actor="test")["id"]
    stall = {"id": "market", "purpose": "no_vending", "points": [[0, 0], [0.5, 0], [0.5, 0.5]]}
    row = update_zones(db, camera_id, [GATE, stall], actor="admin1")
    assert [(z["id"], z["event_class"]) for z in row["zones"]] == [("gate", "0102"), ("market", "0502")]
    audit = db.execute("SELECT detail FROM audit_log WHERE action = 'camera.zones'").fetchone()["detail"]
    assert audit["before"] == [] and [z["id"] for z in audit["after"]] == ["gate", "market"]
    with pytest.raises(Invalid, match="repeat"):
        update_zones(db, camera_id, [GATE, GATE], actor="admin1")
    assert [z["id"] for z in get_camera(db, camera_id)["zones"]] == ["gate", "market"]     # unchanged
    with pytest.raises(NotFound):
        update_zones(db, 999, [], actor="admin1")


def test_cameras_seeing_a_point(db, tiny_city):
    west = add_camera(db, cam(name="西", lon=113.3405, bearing_deg=90, fov_deg=60, range_m=100), actor="test")["id"]
    east = add_camera(db, cam(name="东", lon=113.3420, bearing_deg=270, fov_deg=60, range_m=100), actor="test")["id"]
    off = add_camera(db, cam(name="停用", lon=113.3413, bearing_deg=270, fov_deg=90, range_m=100), actor="test")["id"]
    db.execute("UPDATE camera SET active = false WHERE id = %s", (off,))

    seen = cameras_seeing(db, 113.3412, MID_LAT)              # ~69 m east of 西, ~79 m west of 东
    assert [r["id"] for r in seen] == [west, east]             # nearest first; the switched-off one left out
    metres_per_deg = 111_320 * math.cos(math.radians(MID_LAT))
    assert seen[0]["distance_m"] == pytest.approx(0.0007 * metres_per_deg, rel=0.01)
    assert seen[0]["bearing_to_point"] == pytest.approx(90, abs=0.1)
    assert seen[1]["bearing_to_point"] == pytest.approx(270, abs=0.1)

    assert [r["id"] for r in cameras_seeing(db, 113.3398, MID_LAT)] == []          # behind 西, out of 东's range
    assert [r["id"] for r in cameras_seeing(db, 113.3424, MID_LAT)] == []          # behind 东; 西 is 188 m away
    assert [r["id"] for r in cameras_seeing(db, 113.3406, MID_LAT + 0.0003)] == []  # beside 西: out of its 60°
    assert [r["id"] for r in cameras_seeing(db, 113.3414, MID_LAT)] == [east, west]  # now 东 is nearer
    assert [r["id"] for r in cameras_seeing(db, 113.3414, MID_LAT, limit=1)] == [east]
    with pytest.raises(Invalid, match="lat"):
        cameras_seeing(db, 113.34, 95.0)
