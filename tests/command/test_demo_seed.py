"""The demo city goes in through the real importers and is usable through the API at once."""
from __future__ import annotations

import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient

from command.app import create_app
from command.demo import DEMO_PASSWORD, seed_demo
from gis.config import Settings
from gis.db import connect, open_pool
from tests.conftest import TEST_SECRET


@pytest.fixture(scope="module")
def demo_db(pg_cluster, template_db, tmp_path_factory):
    """One seeded demo city for the whole module (seeding takes a while); tests only read it,
    except the forced re-seed, which must leave it as it was."""
    name = "demo_" + uuid.uuid4().hex[:10]
    with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    data_dir = tmp_path_factory.mktemp("demo-data")
    with connect(pg_cluster.url(name)) as conn:
        summary = seed_demo(conn, data_dir=data_dir, seed=2026, log=lambda _: None, camera_clip_s=50)
    yield pg_cluster.url(name), data_dir, summary
    with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(demo_db):
    with connect(demo_db[0]) as conn:
        yield conn


@pytest.fixture
def settings(demo_db, tmp_path):
    return Settings(demo=False, database_url=demo_db[0], secret_key=TEST_SECRET, timer_interval_seconds=0,
                    data_dir=demo_db[1], run_dir=tmp_path / "run")


@pytest.fixture
def seeded(demo_db):
    return demo_db[2]


def test_seed_fills_the_city_and_is_idempotent(seeded, db, settings):
    counts = db.execute(
        "SELECT (SELECT count(*) FROM street) streets, (SELECT count(*) FROM community) communities,"
        " (SELECT count(*) FROM grid) grids, (SELECT count(*) FROM part) parts,"
        " (SELECT count(DISTINCT class_code) FROM part) classes, (SELECT count(*) FROM part_class) catalog_classes,"
        " (SELECT count(*) FROM basemap_road) roads, (SELECT count(*) FROM basemap_building) buildings,"
        " (SELECT count(*) FROM basemap_water) water,"
        " (SELECT count(*) FROM grid WHERE community_code IS NULL OR area_m2 < 5000 OR area_m2 > 25000) odd,"
        " (SELECT count(*) FROM audit_log WHERE action = 'import') imports").fetchone()
    assert counts["streets"] >= 3 and counts["communities"] >= 20 and counts["grids"] >= 500
    assert counts["parts"] >= 10_000 and counts["classes"] == counts["catalog_classes"]
    assert counts["roads"] > 0 and counts["buildings"] > 0 and counts["water"] > 0
    assert counts["odd"] == 0 and counts["imports"] == 2
    assert "accounts created: admin" in seeded and "demo cases" in seeded
    again = seed_demo(db, data_dir=settings.data_dir, seed=2026, log=lambda _: None)
    assert "already seeded" in again
    assert db.execute("SELECT count(*) AS n FROM part").fetchone()["n"] == counts["parts"]


def test_the_demo_cameras_look_down_streets_with_their_clips_on_disk(seeded, db, settings):
    cameras = db.execute("SELECT name, url, grid_code, zones, ST_IsValid(sector) AS ok FROM camera ORDER BY id").fetchall()
    assert len(cameras) == 4 and "4 cameras" in seeded
    assert all(c["ok"] and c["grid_code"] for c in cameras)
    assert [len(c["zones"]) for c in cameras] == [1, 0, 1, 0]              # a bag is left before two of them
    assert [c["url"] for c in cameras] == [f"http://127.0.0.1:{18900 + i}/" for i in range(4)]
    clips = sorted((settings.data_dir / "streams").glob("*.mp4"))
    assert [c.name for c in clips] == [f"street-{i}.mp4" for i in range(4)] and all(c.stat().st_size for c in clips)


def test_a_database_without_cases_gets_them_on_the_next_run(seeded, db, settings):
    """An older demo database (city, no cases) is completed, not skipped."""
    with db.transaction():
        for table in ("case_timer", "notification", "case_photo", "case_reporter", "case_pause", "case_extension"):
            db.execute(f"DELETE FROM {table}")
        db.execute("ALTER TABLE case_transition DISABLE TRIGGER case_transition_append_only")
        db.execute("DELETE FROM case_transition")
        db.execute("ALTER TABLE case_transition ENABLE TRIGGER case_transition_append_only")
        db.execute("DELETE FROM case_file")
    summary = seed_demo(db, data_dir=settings.data_dir, seed=2026, log=lambda _: None)
    assert "demo cases" in summary and "grids" not in summary
    assert db.execute("SELECT count(*) AS n FROM case_file").fetchone()["n"] > 50


def test_forced_reseed_upserts_instead_of_duplicating(seeded, db, settings):
    before = db.execute("SELECT (SELECT count(*) FROM part) AS parts, (SELECT count(*) FROM case_file) AS cases"
                        ).fetchone()
    seed_demo(db, data_dir=settings.data_dir, seed=2026, force=True, log=lambda _: None)
    assert db.execute("SELECT (SELECT count(*) FROM part) AS parts, (SELECT count(*) FROM case_file) AS cases"
                      ).fetchone() == before


def test_demo_cases_cover_every_state_through_real_transitions(seeded, db):
    states = {r["state"]: r["n"] for r in db.execute("SELECT state, count(*) AS n FROM case_file GROUP BY 1")}
    assert set(states) == {"verifying", "reported", "filed", "dispatched", "in_progress", "handled", "checking",
                           "checked", "closed", "not_filed", "void"}
    # Every state change is in the history, and closed cases went the whole way.
    closed_path = db.execute(
        "SELECT string_agg(action, ',' ORDER BY id) AS path FROM case_transition WHERE case_id ="
        " (SELECT id FROM case_file WHERE state = 'closed' AND source = 'inspector' LIMIT 1)").fetchone()["path"]
    assert closed_path == "report,file,dispatch,accept,handle,send_check,check_pass,close"
    inspectors = db.execute("SELECT count(*) AS n FROM app_user WHERE role = 'inspector'").fetchone()["n"]
    assert inspectors == db.execute("SELECT count(*) AS n FROM community").fetchone()["n"]


def test_demo_accounts_log_in_and_see_the_city(seeded, settings, db):
    pool = open_pool(settings)
    try:
        with TestClient(create_app(settings, pool)) as client:
            token = client.post("/api/auth/token", data={"username": "inspector", "password": DEMO_PASSWORD}).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            area = token["user"]["areas"]
            assert len(area) == 1 and len(area[0]) == 12            # one community
            grids = client.get("/api/grids?limit=5000", headers=headers).json()["features"]
            assert grids and all(g["id"].startswith(area[0]) for g in grids)
            part = db.execute("SELECT id, ST_X(location) x, ST_Y(location) y, grid_code FROM part"
                              " WHERE grid_code LIKE %s LIMIT 1", (area[0] + "%",)).fetchone()
            found = client.get(f"/api/geocode?lon={part['x']}&lat={part['y']}", headers=headers).json()
            assert found["grid_code"] == part["grid_code"]
            assert part["id"] in [p["id"] for p in found["nearest_parts"]]
    finally:
        pool.close()


def test_demo_routing_sends_cases_where_the_county_does(seeded, db):
    from workflows.routing import suggest

    def dept(case):
        return db.execute("SELECT name FROM department WHERE id = %s", (suggest(db, case),)).fetchone()["name"]

    grid = db.execute("SELECT code FROM grid WHERE code LIKE '430223001%' LIMIT 1").fetchone()["code"]
    town = db.execute("SELECT code FROM grid WHERE code LIKE '430223100%' LIMIT 1").fetchone()["code"]
    event = {"kind": "event", "part_id": None, "part_class": None}
    assert dept({**event, "event_class": "0102", "grid_code": grid}) == "县环卫中心"
    assert dept({**event, "event_class": "0501", "grid_code": grid}) == "县城市管理和综合执法局"
    assert dept({**event, "event_class": "0501", "grid_code": town}) == "网岭镇人民政府"
    assert dept({**event, "event_class": "0105", "grid_code": grid}) == "联星街道办事处"     # 先属地


def test_a_fresh_demo_has_a_drill_running_with_its_plan_active_and_an_exercise_alert(seeded, settings, db):
    """`citygrid demo seed` leaves the whole emergency flow to look at: a roster, resources,
    and one waterlogging drill with its plan running, pumps on the way and an issued alert."""
    from lxml import etree

    from tests.workflows.test_cap import XSD

    assert "duty posts on a week's roster" in seeded and "emergency resources" in seeded
    drill = db.execute("SELECT id, status, drill FROM incident").fetchall()
    assert len(drill) == 1 and drill[0]["drill"] and drill[0]["status"] == "responding"
    incident_id = drill[0]["id"]
    assert db.execute("SELECT plan_id FROM plan_activation WHERE incident_id = %s", (incident_id,)
                      ).fetchone()["plan_id"] == "waterlogging"
    tasks = {t["step_id"]: t for t in db.execute(
        "SELECT step_id, status, checklist FROM incident_task WHERE incident_id = %s", (incident_id,))}
    assert tasks["verify"]["status"] == "done" and tasks["pumps"]["status"] == "open"
    assert tasks["verify"]["checklist"] and all(item["done"] for item in tasks["verify"]["checklist"])
    assert db.execute("SELECT count(*) AS n FROM dispatch_order WHERE incident_id = %s AND status = 'sent'",
                      (incident_id,)).fetchone()["n"] >= 1
    # Every task has an owner on duty now: the roster covers today.
    assert db.execute("SELECT count(*) AS n FROM incident_task WHERE incident_id = %s AND owner_user_id IS NULL",
                      (incident_id,)).fetchone()["n"] == 0
    pool = open_pool(settings)
    try:
        with TestClient(create_app(settings, pool)) as client:
            feed = etree.fromstring(client.get("/api/alerts.atom").content)
            ns = {"a": "http://www.w3.org/2005/Atom"}
            titles = feed.xpath("//a:entry/a:title/text()", namespaces=ns)
            assert len(titles) == 1 and titles[0].startswith("【演练】")
            cap_url = feed.xpath("//a:entry/a:link[@type='application/cap+xml']/@href", namespaces=ns)[0]
            cap = client.get(cap_url)
            assert cap.status_code == 200 and cap.headers["content-type"].startswith("application/cap+xml")
            message = etree.fromstring(cap.content)
            etree.XMLSchema(etree.parse(str(XSD))).assertValid(message)
            assert message.findtext("{urn:oasis:names:tc:emergency:cap:1.2}status") == "Exercise"
    finally:
        pool.close()
