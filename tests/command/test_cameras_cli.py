"""`citygrid cameras add|list` against this test's own database."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from command.cli import app
from tests.conftest import TEST_SECRET

GATE = {"id": "gate", "purpose": "no_dumping", "points": [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9]]}
STALL = {"id": "market", "purpose": "no_vending", "points": [[0.5, 0.5], [0.9, 0.5], [0.9, 0.9]]}
PLACE = ["--lon", "113.3425", "--lat", "27.0005", "--bearing", "90", "--fov", "60", "--range", "80"]


@pytest.fixture
def run(db_url, tmp_path):
    env = {"CITYGRID_DATABASE_URL": db_url, "CITYGRID_SECRET_KEY": TEST_SECRET, "CITYGRID_DEMO": "0",
           "CITYGRID_DATA_DIR": str(tmp_path / "data")}

    def invoke(*args: str):
        return CliRunner().invoke(app, list(args), env=env)

    return invoke


def test_cameras_add_prints_the_id_and_stores_the_camera(run, db, tiny_city):
    result = run("cameras", "add", "--name", "联星路口", "--url", "rtsp://admin:pw@10.0.0.5/main",
                 "--sub-url", "rtsp://admin:pw@10.0.0.5/sub", *PLACE, "--zone", json.dumps(GATE),
                 "--zone", json.dumps([STALL]), "--group", "东片", "--height", "6")
    assert result.exit_code == 0, result.output
    camera_id = int(result.output.strip())
    row = db.execute("SELECT name, sub_url, grid_code, bearing_deg, fov_deg, range_m, height_m, group_name, zones"
                     " FROM camera WHERE id = %s", (camera_id,)).fetchone()
    assert (row["name"], row["grid_code"], row["bearing_deg"], row["fov_deg"], row["range_m"], row["height_m"],
            row["group_name"]) == ("联星路口", "430223001002001", 90, 60, 80, 6, "东片")
    assert row["sub_url"] == "rtsp://admin:pw@10.0.0.5/sub"
    assert [(z["id"], z["event_class"]) for z in row["zones"]] == [("gate", "0102"), ("market", "0502")]
    audit = db.execute("SELECT actor FROM audit_log WHERE entity = 'camera' AND entity_id = %s",
                       (str(camera_id),)).fetchone()
    assert audit["actor"].startswith("cli:")

    listed = run("cameras", "list")
    assert listed.exit_code == 0 and listed.output.startswith(f"{camera_id}\t联星路口\t东片\t430223001002001")
    assert "2 zones" in listed.output and "not tried" in listed.output
    assert run("cameras", "list", "--group", "西片").output.strip() == "no cameras"


@pytest.mark.parametrize("args, words", [
    (["--zone", "{not json"], "--zone '{not json' is not JSON"),
    (["--zone", json.dumps({**GATE, "purpose": "parking"})], "purpose must be one of"),
    (["--url-x"], "No such option"),
])
def test_cameras_add_refuses_bad_zones_with_the_reason(run, db, tiny_city, args, words):
    result = run("cameras", "add", "--name", "路口", "--url", "rtsp://10.0.0.5/main", *PLACE, *args)
    assert result.exit_code == 2 and words in result.output
    assert db.execute("SELECT count(*) AS n FROM camera").fetchone()["n"] == 0


def test_cameras_add_outside_the_city_or_with_a_bad_sector(run, db, tiny_city):
    outside = run("cameras", "add", "--name", "远处", "--url", "rtsp://10.0.0.5/main", "--lon", "113.5", "--lat", "27.0",
                  "--bearing", "0", "--fov", "90", "--range", "50")
    assert outside.exit_code == 2 and "outside every unit grid" in outside.output
    wide = run("cameras", "add", "--name", "路口", "--url", "rtsp://10.0.0.5/main", "--lon", "113.3425", "--lat",
               "27.0005", "--bearing", "90", "--fov", "400", "--range", "50")
    assert wide.exit_code == 2 and "fov: 400 is out of range" in wide.output
    assert db.execute("SELECT count(*) AS n FROM camera").fetchone()["n"] == 0


def test_serve_streams_serves_each_clip_as_an_mjpeg_camera(tmp_path):
    """The demo's cameras: a clip in a folder becomes http://127.0.0.1:PORT/, read like any camera."""
    import os
    import subprocess
    import sys

    from command.services import free_port
    from video.frames import open_source
    from video.test_streams import make_street_video

    make_street_video(tmp_path / "street-0.mp4", seconds=4, fps=10, seed=3)
    port = free_port()
    env = {**os.environ, "CITYGRID_SECRET_KEY": TEST_SECRET, "CITYGRID_DEMO": "0"}
    server = subprocess.Popen([sys.executable, "-m", "command.cli", "cameras", "serve-streams", "--dir",
                               str(tmp_path), "--port", str(port)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == f"street-0.mp4\thttp://127.0.0.1:{port}/"
        with open_source(f"http://127.0.0.1:{port}/", fps=5, open_timeout=15) as camera:
            _, frame = camera.read()
        assert frame.shape == (360, 640, 3)
    finally:
        server.terminate()
        assert server.wait(10) == 0
