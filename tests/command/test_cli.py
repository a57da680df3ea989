"""The `citygrid` command against this test's own database."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from command.cli import app
from tests.conftest import TEST_SECRET


@pytest.fixture
def run(db_url, tmp_path):
    env = {"CITYGRID_DATABASE_URL": db_url, "CITYGRID_SECRET_KEY": TEST_SECRET, "CITYGRID_DEMO": "0",
           "CITYGRID_DATA_DIR": str(tmp_path / "data")}

    def invoke(*args: str, input: str | None = None, **extra_env):
        return CliRunner().invoke(app, list(args), input=input, env={**env, **extra_env})

    return invoke


def test_db_status_and_migrate(run):
    status = run("db", "status")
    assert status.exit_code == 0 and "0001 core" in status.output and "applied" in status.output
    again = run("db", "migrate")
    assert again.exit_code == 0 and "applied 0 migration(s)" in again.output


def test_default_secret_is_refused_by_the_server_only(run):
    result = run("serve", CITYGRID_SECRET_KEY="citygrid-demo-secret-do-not-deploy")
    assert result.exit_code == 2 and "CITYGRID_SECRET_KEY is still the demo default" in result.output
    short = run("serve", CITYGRID_SECRET_KEY="short")
    assert short.exit_code == 2 and "at least 16 characters" in short.output
    # Jobs that sign nothing run without a secret.
    assert run("db", "status", CITYGRID_SECRET_KEY="citygrid-demo-secret-do-not-deploy").exit_code == 0


def test_users_add_reads_the_password_from_stdin(run, db):
    result = run("users", "add", "zhou", "--role", "inspector", "--area", "430223001001", "--password-stdin",
                 input="a-long-password\n")
    assert result.exit_code == 0, result.output
    user_id = int(result.output.strip())
    assert db.execute("SELECT role FROM app_user WHERE id = %s", (user_id,)).fetchone()["role"] == "inspector"
    assert db.execute("SELECT area_code FROM user_area WHERE user_id = %s", (user_id,)).fetchone()["area_code"] == \
        "430223001001"
    dup = run("users", "add", "zhou", "--role", "operator", "--password-stdin", input="a-long-password\n")
    assert dup.exit_code == 2 and "already exists" in dup.output
    bad = run("users", "add", "li", "--role", "mayor", "--password-stdin", input="a-long-password\n")
    assert bad.exit_code == 2 and "role 'mayor' is not one of" in bad.output


def test_demo_seed_needs_demo_mode(run):
    result = run("demo", "seed")
    assert result.exit_code == 2 and "CITYGRID_DEMO=1" in result.output


def test_unreachable_database_says_what_to_do(run):
    result = run("db", "status", CITYGRID_DATABASE_URL="postgresql://x:y@127.0.0.1:1/none")
    assert result.exit_code == 2 and "citygrid services up" in result.output


def test_export_grids_geojson(run, tmp_path, db):
    db.execute("INSERT INTO county VALUES ('430223', '攸县', NULL)")
    db.execute("INSERT INTO street VALUES ('430223001', '430223', '联星街道', '街道', NULL)")
    db.execute("INSERT INTO community VALUES ('430223001001', '430223001', '东正社区', NULL)")
    db.execute("INSERT INTO grid (code, community_code, name, area_m2, geom) VALUES ('430223001001001',"
               " '430223001001', 'g1', 1, ST_Multi(ST_MakeEnvelope(113.34, 27.0, 113.341, 27.001, 4326)))")
    db.commit()
    out = tmp_path / "grids.geojson"
    result = run("export", "grids", "--out", str(out))
    assert result.exit_code == 0 and "1 grids written" in result.output
    fc = json.loads(out.read_text())
    assert fc["features"][0]["properties"]["code"] == "430223001001001"
    assert fc["features"][0]["properties"]["community_name"] == "东正社区"
    bad = run("export", "grids", "--out", str(tmp_path / "grids.csv"))
    assert bad.exit_code == 2 and ".geojson or .gpkg" in bad.output


def _grid_file(path, cells):
    features = [{"type": "Feature", "properties": {"code": code, "community_name": "东正社区"},
                 "geometry": {"type": "Polygon", "coordinates": [[[x, 27.0], [x + 0.001, 27.0], [x + 0.001, 27.001],
                                                                  [x, 27.001], [x, 27.0]]]}}
                for code, x in cells]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


def test_import_grids_good_and_refused(run, tmp_path, db):
    good = _grid_file(tmp_path / "good.geojson", [("430223001001001", 113.340), ("43022300100102", 113.341)])
    result = run("import", "grids", str(good), "--county-name", "攸县")
    assert result.exit_code == 0, result.output
    assert "2 imported, 0 rejected" in result.output
    assert db.execute("SELECT count(*) AS n FROM grid").fetchone()["n"] == 2

    bad = _grid_file(tmp_path / "bad.geojson", [("430223001001003", 113.342), ("4302230010010XX", 113.343),
                                                ("430223001001004", 113.3425)])
    refused = run("import", "grids", str(bad))
    assert refused.exit_code == 2
    assert "refused, nothing was written" in refused.output
    assert "4302230010010XX" in refused.output and "overlap" in refused.output.lower()
    assert db.execute("SELECT count(*) AS n FROM grid").fetchone()["n"] == 2

    report = tmp_path / "report.json"
    skipped = run("import", "grids", str(bad), "--skip-invalid", "--report", str(report))
    assert skipped.exit_code == 0 and "rejected" in skipped.output
    problems = json.loads(report.read_text())["problems"]
    assert any("4302230010010XX" in p["feature"] or "4302230010010XX" in p["message"] for p in problems)


def test_import_with_field_renames(run, tmp_path, db):
    path = tmp_path / "renamed.geojson"
    _grid_file(path, [("430223001001001", 113.340)])
    path.write_text(path.read_text().replace('"code"', '"BM"'))
    missing = run("import", "grids", str(path))
    assert missing.exit_code == 2 and "code" in missing.output
    ok = run("import", "grids", str(path), "--map", "BM=code")
    assert ok.exit_code == 0, ok.output
    bad_map = run("import", "grids", str(path), "--map", "BM")
    assert bad_map.exit_code == 2 and "old=new" in bad_map.output


def test_import_of_a_missing_file_is_clear(run, tmp_path):
    result = run("import", "parts", str(tmp_path / "nope.gpkg"))
    assert result.exit_code == 2 and "nope.gpkg" in result.output


def test_export_parts_geopackage_round_trips(run, tmp_path, db):
    import geopandas as gpd

    good = _grid_file(tmp_path / "g.geojson", [("430223001001001", 113.340)])
    assert run("import", "grids", str(good)).exit_code == 0
    parts = tmp_path / "p.geojson"
    parts.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"class_code": "0114", "dept_owner": "县城市管理和综合执法局"},
         "geometry": {"type": "Point", "coordinates": [113.3405, 27.0005]}}]}))
    assert run("import", "parts", str(parts)).exit_code == 0
    out = tmp_path / "parts.gpkg"
    result = run("export", "parts", "--out", str(out))
    assert result.exit_code == 0 and "1 parts written" in result.output
    frame = gpd.read_file(out, layer="parts")
    assert frame.loc[0, "id"] == "4302230114000001" and frame.loc[0, "dept_owner"] == "县城市管理和综合执法局"
    assert frame.crs.to_epsg() == 4326


def test_apikey_create_prints_a_key_and_stores_only_its_hash(run, db):
    from command.apikeys import key_hash, key_owner

    result = run("apikey", "create", "12345热线平台")
    assert result.exit_code == 0, result.output
    key = result.output.strip()
    assert key.startswith("cg_") and len(key) > 40
    row = db.execute("SELECT name, key_hash FROM api_key").fetchone()
    assert row == {"name": "12345热线平台", "key_hash": key_hash(key)}
    assert key_owner(db, key)["name"] == "12345热线平台" and key_owner(db, key + "x") is None
    assert run("apikey", "create", "x").exit_code == 2


def test_import_tolerances_and_far_away_check_from_the_cli(run, tmp_path, db):
    near = _grid_file(tmp_path / "near.geojson", [("430223001001001", 113.340)])
    assert run("import", "grids", str(near)).exit_code == 0
    far = _grid_file(tmp_path / "far.geojson", [("430223001001002", 116.400)])     # ~300 km away
    refused = run("import", "grids", str(far))
    assert refused.exit_code == 2 and "CRS" in refused.output
    accepted = run("import", "grids", str(far), "--far-away-km", "0")
    assert accepted.exit_code == 0, accepted.output
    # Two grids overlapping by a sliver: refused by default, accepted with a larger tolerance.
    sliver = _grid_file(tmp_path / "sliver.geojson", [("430223002001001", 113.3500), ("430223002001002", 113.35099)])
    assert run("import", "grids", str(sliver)).exit_code == 2
    assert run("import", "grids", str(sliver), "--overlap-tolerance", "2000").exit_code == 0


def test_devices_import_adds_a_file_or_names_its_bad_lines(run, tmp_path, db, tiny_city):
    good = tmp_path / "devices.csv"
    good.write_text("device_id,type,lon,lat,part_id,username,password\n"
                    "MC-0001,manhole_cover,,,4302230101000001,,cover-pass-1\n"
                    "WL-0001,waterlogging_gauge,113.3425,27.0005,,wl1,gauge-pass-1\n", encoding="utf-8")
    done = run("devices", "import", str(good))
    assert done.exit_code == 0, done.output
    assert "added 2 devices" in done.output
    bad = tmp_path / "bad.csv"
    bad.write_text("device_id,type,lon,lat\nWL-0002,waterlogging_gauge,113.9,27.9\n", encoding="utf-8")
    refused = run("devices", "import", str(bad))
    assert refused.exit_code != 0 and "line 2" in refused.output and "outside every unit grid" in refused.output
    assert db.execute("SELECT count(*) AS n FROM device").fetchone()["n"] == 2


def test_devices_broker_auth_writes_the_brokers_files(run, tmp_path, db, tiny_city):
    from devices.device_registry import NewDevice, add_device
    add_device(db, NewDevice("MC-1", "manhole_cover", part_id="4302230101000001", password="cover-pass-1"),
               actor="test")
    done = run("devices", "broker-auth", "--dir", str(tmp_path / "auth"), "--service", "ingest",
               input="svc-pass-123\n")
    assert done.exit_code == 0, done.output
    assert "1 device login(s), 1 service account(s)" in done.output
    acl = (tmp_path / "auth" / "acl").read_text()
    assert "user MC-1\ntopic write citygrid/devices/MC-1/telemetry" in acl and "user ingest\ntopic readwrite #" in acl
    assert [line.split(":")[0] for line in (tmp_path / "auth" / "passwd").read_text().split()] == ["ingest", "MC-1"]
