"""The API spine: health, login, role/area/department checks, GeoJSON, geocode, audit."""
from __future__ import annotations

import json

import pytest

from tests.conftest import PASSWORD


def test_health_answers_when_the_database_does(client):
    r = client.get("/api/health")
    assert r.status_code == 200 and r.json() == {"status": "ok", "database": "ok"}


def test_ready_reports_migrations_and_catalog(client):
    body = client.get("/api/ready").json()
    assert body["status"] == "ready" and body["pending_migrations"] == [] and body["grids"] == 4


def test_login_wrong_password_is_401_with_a_clear_message(client, login):
    login("operator", "op")
    r = client.post("/api/auth/token", data={"username": "op", "password": "nope-nope"})
    assert r.status_code == 401 and r.json()["message"] == "wrong user name or password"
    r = client.post("/api/auth/token", data={"username": "ghost", "password": "nope-nope"})
    assert r.status_code == 401 and r.json()["message"] == "wrong user name or password"


def test_every_data_endpoint_needs_a_login(client):
    for path in ("/api/grids", "/api/parts", "/api/geocode?lon=113.3405&lat=27.0005", "/api/catalog",
                 "/api/areas", "/api/basemap/roads", "/api/me", "/api/users", "/api/audit"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert "log in" in r.json()["message"]


def test_forged_token_is_refused(client, login):
    login("operator")
    r = client.get("/api/me", headers={"Authorization": "Bearer abc.def.ghi"})
    assert r.status_code == 401 and "not valid" in r.json()["message"]


def test_disabled_user_token_stops_working(client, login, db):
    headers = login("leader", "boss")
    assert client.get("/api/me", headers=headers).status_code == 200
    db.execute("UPDATE app_user SET active = false WHERE username = 'boss'")
    db.commit()
    assert client.get("/api/me", headers=headers).status_code == 401


def test_grids_geojson_with_bbox_and_paging(client, login):
    headers = login("operator")
    fc = client.get("/api/grids", headers=headers).json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 4
    assert fc["features"][0]["properties"]["community_name"] == "东正社区"
    r = client.get("/api/grids?bbox=113.3400,27.0001,113.3412,27.0009", headers=headers)
    assert [f["id"] for f in r.json()["features"]] == ["430223001001001", "430223001001002"]
    page1 = client.get("/api/grids?limit=3", headers=headers)
    assert page1.headers["X-Next-After"] == "430223001002001"
    page2 = client.get("/api/grids?limit=3&after=430223001002001", headers=headers)
    assert [f["id"] for f in page2.json()["features"]] == ["430223001002002"]
    assert "X-Next-After" not in page2.headers


@pytest.mark.parametrize("bbox", ["1,2,3", "a,b,c,d", "113.35,27,113.34,27.01"])
def test_bad_bbox_is_a_422_that_says_how(client, login, bbox):
    r = client.get(f"/api/grids?bbox={bbox}", headers=login("operator"))
    assert r.status_code == 422
    assert "min_lon,min_lat,max_lon,max_lat" in r.json()["message"] or "not a box" in r.json()["message"]


def test_inspector_sees_only_their_area(client, login):
    headers = login("inspector", areas=["430223001002"])
    grids = client.get("/api/grids", headers=headers).json()["features"]
    assert {f["id"] for f in grids} == {"430223001002001", "430223001002002"}
    parts = client.get("/api/parts", headers=headers).json()["features"]
    assert [f["id"] for f in parts] == ["4302230114000002"]
    assert client.get("/api/parts/4302230101000001", headers=headers).status_code == 404
    assert client.get("/api/grids/430223001001001", headers=headers).status_code == 404


def test_parts_filters(client, login):
    headers = login("dispatcher")
    lights = client.get("/api/parts?class_code=0114", headers=headers).json()["features"]
    assert {f["id"] for f in lights} == {"4302230114000001", "4302230114000002"}
    assert client.get("/api/parts?big_code=01&status=丢失", headers=headers).json()["features"] == []
    assert client.get("/api/parts?status=broken", headers=headers).status_code == 422


def test_part_status_change_is_audited_in_the_same_transaction(client, login, db):
    headers = login("operator", "op1")
    r = client.patch("/api/parts/4302230101000001/status", headers=headers,
                     json={"status": "丢失", "note": "井盖被盗"})
    assert r.status_code == 200 and r.json()["status"] == "丢失"
    rows = db.execute("SELECT actor, action, entity_id, detail FROM audit_log WHERE action = 'part.status'").fetchall()
    assert rows == [{"actor": "op1", "action": "part.status", "entity_id": "4302230101000001",
                     "detail": {"from": "完好", "to": "丢失", "note": "井盖被盗"}}]


def test_bad_status_writes_nothing(client, login, db):
    r = client.patch("/api/parts/4302230101000001/status", headers=login("operator"), json={"status": "坏了"})
    assert r.status_code == 422 and "完好" in r.json()["message"]
    assert db.execute("SELECT status FROM part WHERE id = '4302230101000001'").fetchone()["status"] == "完好"
    assert db.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'part.status'").fetchone()["n"] == 0


def test_department_user_changes_only_its_own_parts(client, login, tiny_city):
    headers = login("department", dept=tiny_city["water_dept"])
    mine = client.patch("/api/parts/4302230101000001/status", headers=headers, json={"status": "破损"})
    assert mine.status_code == 200
    other = client.patch("/api/parts/4302230114000001/status", headers=headers, json={"status": "破损"})
    assert other.status_code == 403 and "your department" in other.json()["message"]


def test_roles_without_the_permission_are_refused(client, login):
    r = client.patch("/api/parts/4302230101000001/status", headers=login("leader"), json={"status": "破损"})
    assert r.status_code == 403 and "leader" in r.json()["message"]
    assert client.get("/api/users", headers=login("operator")).status_code == 403
    assert client.get("/api/audit", headers=login("dispatcher")).status_code == 403


def test_geocode_point_to_grid_and_nearest_parts(client, login):
    r = client.get("/api/geocode?lon=113.3406&lat=27.0005", headers=login("inspector", areas=["430223"]))
    body = r.json()
    assert r.status_code == 200
    assert (body["grid_code"], body["community_name"], body["street_name"], body["county_name"]) == \
        ("430223001001001", "东正社区", "联星街道", "攸县")
    assert body["nearest_parts"][0]["id"] == "4302230101000001"
    assert body["nearest_parts"][0]["distance_m"] < 15


def test_geocode_outside_the_jurisdiction_is_404(client, login):
    r = client.get("/api/geocode?lon=116.4&lat=39.9", headers=login("operator"))
    assert r.status_code == 404 and "outside every unit grid" in r.json()["message"]
    assert client.get("/api/geocode?lon=500&lat=27", headers=login("operator")).status_code == 422


def test_catalog_lists_classes_with_time_limits(client, login):
    body = client.get("/api/catalog", headers=login("operator")).json()
    covers = next(b for b in body["parts"] if b["code"] == "01")
    assert covers["name"] == "公用设施" and covers["classes"][0] == {"code": "0101", "name": "上水井盖", "std": True}
    waterlogging = next(c for b in body["events"] for c in b["classes"] if c["code"] == "0405")
    assert (waterlogging["name"], waterlogging["limit_kind"], waterlogging["limit_value"]) == ("道路积水", "自然时", 2.0)


def test_admin_creates_users_with_audit_and_clear_errors(client, login, db):
    admin = login("admin", "root")
    r = client.post("/api/users", headers=admin, json={"username": "zhou", "password": PASSWORD,
                                                       "role": "inspector", "areas": ["430223001001"]})
    assert r.status_code == 201 and r.json()["areas"] == ["430223001001"]
    again = client.post("/api/users", headers=admin, json={"username": "zhou", "password": PASSWORD,
                                                           "role": "inspector", "areas": ["430223001002"]})
    assert again.status_code == 409 and "already exists" in again.json()["message"]
    bad = client.post("/api/users", headers=admin, json={"username": "x1", "password": PASSWORD,
                                                         "role": "department"})
    assert bad.status_code == 422 and "--dept" in bad.json()["message"]
    short = client.post("/api/users", headers=admin, json={"username": "x2", "password": "short", "role": "operator"})
    assert short.status_code == 422 and "password" in short.json()["message"]
    audit = client.get("/api/audit?entity=user", headers=admin).json()
    assert [a["detail"]["username"] for a in audit][:2] == ["zhou", "root"]


def test_openapi_documents_the_spine(client):
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/health", "/api/auth/token", "/api/grids", "/api/parts", "/api/geocode", "/api/catalog"):
        assert p in paths


def test_basemap_layer_and_unknown_layer(client, login, db):
    db.execute("INSERT INTO basemap_road (name, kind, width_m, geom) VALUES"
               " ('人民路', '主干道', 24, ST_GeomFromText('LINESTRING(113.34 27.0, 113.344 27.0)', 4326))")
    db.commit()
    headers = login("leader")
    roads = json.loads(client.get("/api/basemap/roads", headers=headers).text)
    assert roads["features"][0]["properties"] == {"name": "人民路", "kind": "主干道", "width_m": 24}
    r = client.get("/api/basemap/railways", headers=headers)
    assert r.status_code == 422 and "roads, buildings, water" in r.json()["message"]


def test_geocode_respects_the_inspectors_area(client, login):
    headers = login("inspector", areas=["430223001002"])
    r = client.get("/api/geocode?lon=113.3406&lat=27.0005", headers=headers)      # in community …001
    assert r.status_code == 404 and "your area" in r.json()["message"]
    inside = client.get("/api/geocode?lon=113.3426&lat=27.0005", headers=headers).json()
    assert inside["grid_code"] == "430223001002001"
    assert {p["id"] for p in inside["nearest_parts"]} == {"4302230114000002"}


def test_inspector_without_an_area_is_refused(client, login):
    admin = login("admin")
    r = client.post("/api/users", headers=admin, json={"username": "nowhere", "password": "long-enough-pw",
                                                       "role": "inspector"})
    assert r.status_code == 422 and "patrol area" in r.json()["message"]


@pytest.mark.parametrize("path", ["/api/grids?after=%00", "/api/parts/%00", "/api/grids/43022300100100%00",
                                  "/api/parts?after=12%0034"])
def test_nul_bytes_and_malformed_ids_are_422(client, login, path):
    r = client.get(path, headers=login("operator"))
    assert r.status_code == 422, r.text


def test_nul_byte_in_login_is_not_a_500(client):
    r = client.post("/api/auth/token", data={"username": "a\x00b", "password": "whatever-pw"})
    assert r.status_code in (401, 422)
