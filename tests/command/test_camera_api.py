"""The cameras API: registering by role, sectors as GeoJSON, zones, events with snapshot
links and files, "cameras that can see this point", and coverage as GeoJSON."""
from __future__ import annotations

import datetime as dt

from video.cameras import NewCamera, add_camera

MID_LAT = 27.0005
NEW = {"name": "联星路口东", "url": "rtsp://admin:pw@10.0.0.5/main", "sub_url": "rtsp://admin:pw@10.0.0.5/sub",
       "lon": 113.3415, "lat": MID_LAT, "bearing_deg": 90, "fov_deg": 60, "range_m": 80, "group": "东片",
       "zones": [{"id": "gate", "purpose": "no_dumping", "points": [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9]]}]}
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"


def test_roles_are_checked(client, login):
    assert client.get("/api/cameras").status_code == 401
    assert client.get("/api/coverage").status_code == 401
    assert client.post("/api/cameras", json=NEW, headers=login("shift_lead")).status_code == 403
    assert client.post("/api/cameras", json=NEW, headers=login("inspector", areas=["430223001001"])).status_code == 403
    extra = {"department": {"dept": "攸县自来水公司"}, "inspector": {"areas": ["430223001"]}}
    for role in ("leader", "department", "inspector"):
        assert client.get("/api/cameras", headers=login(role, **extra.get(role, {}))).status_code == 200


def test_admin_registers_a_camera_and_reads_it_back_with_its_sector(client, login, db):
    admin = login("admin")
    r = client.post("/api/cameras", json=NEW, headers=admin)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["grid_code"] == "430223001001002" and body["group"] == "东片"
    assert body["url"] == "rtsp://admin:***@10.0.0.5/main" and "pw" not in body["sub_url"]
    assert body["sector"]["type"] == "Polygon"
    ring = body["sector"]["coordinates"][0]
    assert ring[0] == [113.3415, MID_LAT] and all(x >= 113.3415 for x, _ in ring)   # looks east
    got = client.get(f"/api/cameras/{body['id']}", headers=login("operator")).json()
    assert got["sector"] == body["sector"] and got["zones"][0]["event_class"] == "0102"
    assert db.execute("SELECT action FROM audit_log WHERE entity = 'camera'").fetchone()["action"] == "camera.add"
    listed = client.get("/api/cameras?group=东片", headers=admin).json()
    assert [c["id"] for c in listed] == [body["id"]]
    assert client.get("/api/cameras?group=西片", headers=admin).json() == []
    assert [c["id"] for c in client.get("/api/cameras?area=430223001001", headers=admin).json()] == [body["id"]]
    assert client.get("/api/cameras?area=430223001002", headers=admin).json() == []
    fc = client.get("/api/cameras.geojson", headers=admin)
    assert fc.headers["content-type"].startswith("application/geo+json")
    feature = fc.json()["features"][0]
    assert feature["geometry"]["type"] == "Polygon" and feature["properties"]["name"] == "联星路口东"
    assert client.get("/api/cameras/999", headers=admin).status_code == 404


def test_malformed_input_gets_a_422_naming_the_problem(client, login, db):
    admin = login("admin")
    bad_zone = {**NEW, "zones": [{"id": "gate", "purpose": "no_dumping", "points": [[0.1, 0.1], [1.5, 0.2], [0.3, 0.9]]}]}
    r = client.post("/api/cameras", json=bad_zone, headers=admin)
    assert r.status_code == 422 and "zone 'gate': point [1.5, 0.2] is off the image" in r.json()["message"]
    r = client.post("/api/cameras", json={**NEW, "fov_deg": 0}, headers=admin)
    assert r.status_code == 422 and r.json()["message"].startswith("fov:")
    r = client.post("/api/cameras", json={**NEW, "lon": 113.36}, headers=admin)
    assert r.status_code == 422 and "outside every unit grid" in r.json()["message"]
    r = client.post("/api/cameras", json={k: v for k, v in NEW.items() if k != "range_m"}, headers=admin)
    assert r.status_code == 422 and "range_m" in r.json()["message"]
    assert db.execute("SELECT count(*) AS n FROM camera").fetchone()["n"] == 0


def test_zones_are_replaced_or_refused(client, login):
    admin = login("admin")
    camera_id = client.post("/api/cameras", json=NEW, headers=admin).json()["id"]
    stall = {"id": "market", "purpose": "no_vending", "points": [[0, 0], [0.5, 0], [0.5, 0.5]]}
    r = client.put(f"/api/cameras/{camera_id}/zones", json={"zones": [stall]}, headers=admin)
    assert r.status_code == 200 and [z["id"] for z in r.json()["zones"]] == ["market"]
    r = client.put(f"/api/cameras/{camera_id}/zones", json={"zones": [{**stall, "purpose": "parking"}]}, headers=admin)
    assert r.status_code == 422 and "purpose must be one of" in r.json()["message"]
    assert client.put(f"/api/cameras/{camera_id}/zones", json={"zones": []}, headers=login("commander")).status_code == 403
    assert client.put("/api/cameras/999/zones", json={"zones": []}, headers=admin).status_code == 404


def _event(db, camera_id, local_id, kind, started, snapshot=None, before=None):
    return db.execute(
        "INSERT INTO camera_event (camera_id, local_id, kind, zone_id, event_class, started_at, updated_at, boxes,"
        " score, snapshot, before_snapshot, grid_code, location)"
        " SELECT id, %s, %s, 'gate', %s, %s, %s, '[[0.1, 0.5, 0.3, 0.8]]', 0.8, %s, %s, grid_code, location"
        " FROM camera WHERE id = %s RETURNING id",
        (local_id, kind, "0102" if kind == "dwell" else None, started, started, snapshot, before, camera_id)
    ).fetchone()["id"]


def test_events_are_listed_with_snapshot_links_and_the_files_served(client, login, db, settings):
    camera_id = add_camera(db, NewCamera(name="路口", url="rtsp://10.0.0.5/main", lon=113.3415, lat=MID_LAT,
                                         bearing_deg=90, fov_deg=60, range_m=80), actor="test")["id"]
    t0 = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.timezone.utc)
    folder = settings.data_dir / "snapshots" / str(camera_id)
    folder.mkdir(parents=True)
    (folder / "e1.jpg").write_bytes(JPEG)
    (folder / "e2-before.jpg").write_bytes(JPEG[:10] + JPEG[-2:])
    motion = _event(db, camera_id, "m-1", "motion", t0, snapshot=f"snapshots/{camera_id}/e1.jpg")
    dwell = _event(db, camera_id, "d-1", "dwell", t0 + dt.timedelta(minutes=5),
                   snapshot=f"snapshots/{camera_id}/missing.jpg", before=f"snapshots/{camera_id}/e2-before.jpg")
    bare = _event(db, camera_id, "m-2", "motion", t0 - dt.timedelta(hours=1))
    escaping = _event(db, camera_id, "m-3", "motion", t0 - dt.timedelta(hours=2), snapshot="../../etc/passwd")
    user = login("operator")

    events = client.get(f"/api/cameras/{camera_id}/events", headers=user).json()
    assert [e["id"] for e in events] == [dwell, motion, bare, escaping]                 # newest first
    base = f"/api/cameras/{camera_id}/events"
    assert events[1]["snapshot_url"] == f"{base}/{motion}/snapshot.jpg" and events[1]["before_url"] is None
    assert events[0]["before_url"] == f"{base}/{dwell}/before.jpg" and events[0]["event_class_name"] == "暴露垃圾"
    assert events[2]["snapshot_url"] is None and events[1]["boxes"] == [[0.1, 0.5, 0.3, 0.8]]
    assert [e["id"] for e in client.get(f"{base}?kind=dwell", headers=user).json()] == [dwell]
    since = (t0 - dt.timedelta(minutes=1)).isoformat()
    assert [e["id"] for e in client.get(base, params={"since": since}, headers=user).json()] == [dwell, motion]
    assert [e["id"] for e in client.get(f"{base}?limit=1", headers=user).json()] == [dwell]
    assert client.get(base, params={"since": "2026-11-22T08:00:00"}, headers=user).status_code == 422
    assert client.get("/api/cameras/999/events", headers=user).status_code == 404

    picture = client.get(events[1]["snapshot_url"], headers=user)
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg" and picture.content == JPEG
    token = user["Authorization"].removeprefix("Bearer ")
    assert client.get(f"{events[0]['before_url']}?token={token}").status_code == 200     # as an <img> asks
    assert client.get(events[0]["before_url"]).status_code == 401
    missing = client.get(f"{base}/{dwell}/snapshot.jpg", headers=user)
    assert missing.status_code == 404 and "not on disk" in missing.json()["message"]
    assert client.get(f"{base}/{bare}/snapshot.jpg", headers=user).status_code == 404
    assert client.get(f"{base}/{escaping}/snapshot.jpg", headers=user).status_code == 404   # outside data_dir
    assert client.get(f"/api/cameras/{camera_id + 1}/events/{motion}/snapshot.jpg", headers=user).status_code == 404


def test_cameras_that_can_see_a_point(client, login, db):
    west = add_camera(db, NewCamera(name="西", url="rtsp://10.0.0.5/a", lon=113.3405, lat=MID_LAT, bearing_deg=90,
                                    fov_deg=60, range_m=100), actor="test")["id"]
    east = add_camera(db, NewCamera(name="东", url="rtsp://10.0.0.6/a", lon=113.3420, lat=MID_LAT, bearing_deg=270,
                                    fov_deg=60, range_m=100), actor="test")["id"]
    user = login("dispatcher")
    seen = client.get("/api/cameras/seeing", params={"lon": 113.3412, "lat": MID_LAT}, headers=user)
    assert seen.status_code == 200, seen.text
    assert [(c["id"], round(c["bearing_to_point"])) for c in seen.json()] == [(west, 90), (east, 270)]
    assert seen.json()[0]["distance_m"] < seen.json()[1]["distance_m"]
    assert client.get("/api/cameras/seeing", params={"lon": 113.3398, "lat": MID_LAT}, headers=user).json() == []
    assert client.get("/api/cameras/seeing", params={"lon": 113.34, "lat": 95}, headers=user).status_code == 422
    assert client.get("/api/cameras/seeing", params={"lon": 113.34}, headers=user).status_code == 422


def test_coverage_as_geojson_with_blind_grids_and_suggestions(client, login, db):
    db.execute("INSERT INTO basemap_road (name, kind, width_m, geom) VALUES ('联星路', '支路', 10,"
               " ST_GeomFromText('LINESTRING(113.3400 27.0005, 113.3440 27.0005)', 4326))")
    add_camera(db, NewCamera(name="路口", url="rtsp://10.0.0.5/a", lon=113.3415, lat=MID_LAT, bearing_deg=90,
                             fov_deg=90, range_m=80), actor="test")
    user = login("leader")
    r = client.get("/api/coverage", headers=user)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 4
    feature = {f["id"]: f for f in fc["features"]}["430223001001002"]
    assert feature["geometry"]["type"] == "MultiPolygon"
    props = feature["properties"]
    assert set(props) >= {"code", "street_m2", "covered_m2", "share", "blind"}
    assert props["street_m2"] > 900 and 0.3 < props["share"] < 0.6 and props["blind"] is False
    first = {f["id"]: f for f in fc["features"]}["430223001001001"]["properties"]
    assert first["share"] == 0 and first["blind"] is True
    assert fc["summary"]["blind_grids"] == sum(f["properties"]["blind"] for f in fc["features"])
    blind = client.get("/api/coverage/blind", headers=user).json()
    assert "430223001001001" in [b["code"] for b in blind] and "430223001001002" not in [b["code"] for b in blind]
    assert client.get("/api/coverage?threshold=2", headers=user).status_code == 422
    picks = client.get("/api/coverage/suggestions?k=3&range_m=40", headers=user)
    assert picks.status_code == 200
    features = picks.json()["features"]
    assert [f["properties"]["rank"] for f in features] == [1, 2, 3]
    assert features[0]["geometry"]["type"] == "Point"
    gains = [f["properties"]["gain_m2"] for f in features]
    assert gains == sorted(gains, reverse=True) and gains[0] > 0
    assert {"bearing_deg", "fov_deg", "range_m", "grid_code"} <= set(features[0]["properties"])
