"""The camera worker against the real database and real streams: motion events with
snapshots, a left object becoming a case to verify, a camera that does not answer marked
offline while the other runs on, and cameras shared and handed over by leases."""
from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time

import psycopg

from video import event_cases
from video.cameras import NewCamera, add_camera
from video.worker import VideoWorker
from video.zones import zone_around
from workflows.case_rules import ActionRequest
from workflows.cases import CaseDesk, act
from workflows.notify import LIVE_CHANNEL

HERE = (113.3405, 27.0005)          # inside the tiny city


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _camera(db, name: str, url: str, zones=()) -> int:
    return add_camera(db, NewCamera(name, url, *HERE, bearing_deg=90, fov_deg=60, range_m=80, zones=list(zones)),
                      actor="test")["id"]


def _wait(db, sql: str, args=(), timeout: float = 60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        row = db.execute(sql, args).fetchone()
        if row and all(v for v in row.values()):
            return row
        time.sleep(0.2)
    return db.execute(sql, args).fetchone()


def test_motion_events_a_left_object_case_and_an_offline_camera(db, settings, tiny_city, street):
    path, truth = street
    street_cam = _camera(db, "建设路东", str(path), [zone_around(truth.left_object, truth.size, pad=0.04)])
    dead_cam = _camera(db, "联星路口", f"http://127.0.0.1:{_closed_port()}/video.mjpg")
    worker = VideoWorker(settings, "video-test", lease=dt.timedelta(seconds=30), dwell_s=3.0, realtime=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    with psycopg.connect(settings.database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {LIVE_CHANNEL}")
        thread.start()
        try:
            dwell = _wait(db, "SELECT id, case_id, snapshot, before_snapshot FROM camera_event"
                              " WHERE kind = 'dwell' AND camera_id = %s", (street_cam,))
            offline = _wait(db, "SELECT online = false AS off, status_reason FROM camera WHERE id = %s", (dead_cam,))
        finally:
            worker.stop()
            thread.join(15)
        announced = [json.loads(n.payload) for n in listener.notifies(timeout=0.5)]
    assert dwell and dwell["case_id"], "the left object made no case"
    case = db.execute("SELECT state, source, event_class FROM case_file WHERE id = %s", (dwell["case_id"],)).fetchone()
    assert case == {"state": "verifying", "source": "video", "event_class": "0102"}     # 暴露垃圾, 待核实
    assert db.execute("SELECT count(*) AS n FROM case_photo WHERE case_id = %s",
                      (dwell["case_id"],)).fetchone()["n"] == 2                       # before and after
    for name in (dwell["snapshot"], dwell["before_snapshot"]):
        assert (settings.data_dir / name).read_bytes()[:2] == b"\xff\xd8"            # JPEGs on disk
    motion = db.execute("SELECT count(*) AS n, count(snapshot) AS pictures, count(ended_at) AS ended"
                        " FROM camera_event WHERE kind = 'motion' AND camera_id = %s", (street_cam,)).fetchone()
    assert motion["n"] >= len(truth.movers()) - 1 and motion["pictures"] == motion["n"] and motion["ended"] >= 1
    assert offline["off"] and offline["status_reason"].split(":")[0] in ("unreachable", "timeout", "bad_stream")
    assert any(m.get("kind") == "camera_event" and m.get("event") == "dwell" and m["camera_id"] == street_cam
               for m in announced)
    assert db.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'camera.offline' AND entity_id = %s",
                      (str(dead_cam),)).fetchone()["n"] == 1
    assert db.execute("SELECT lease_owner FROM camera WHERE id = %s", (street_cam,)).fetchone()["lease_owner"] is None

    # The shift lead voids the case (not a problem): the object is dismissed for good, and the
    # next worker to hold the camera knows it.
    from command.auth import create_user
    lead = create_user(db, username="lead", password="correct-horse-battery", role="shift_lead", actor="test")
    desk = CaseDesk.default()
    act(db, CaseDesk(desk.flow, desk.calendar, [event_cases.case_finished]), dwell["case_id"], "void", lead,
        ActionRequest(note="店家临时堆放，已自行清走"))
    assert db.execute("SELECT status FROM camera_event WHERE id = %s", (dwell["id"],)).fetchone()["status"] == "dismissed"
    dismissal = db.execute("SELECT zone_id, box, dismissed_by FROM camera_dismissal").fetchone()
    assert dismissal["zone_id"] == "pavement" and dismissal["dismissed_by"] == "lead" and len(dismissal["box"]) == 4
    again = VideoWorker(settings, "video-test-2", lease=dt.timedelta(seconds=30), dwell_s=3.0, realtime=False)
    try:
        again.balance()
        x0, y0, x1, y1 = dismissal["box"]
        assert again.readers[street_cam].dismissed[0]["box"] == [x0, y0, x1 - x0, y1 - y0]
    finally:
        again.shutdown()


def test_cameras_are_shared_by_lease_and_a_dead_workers_move_on(db, settings, tiny_city):
    cameras = [_camera(db, f"路口{i}", f"http://127.0.0.1:{_closed_port()}/{i}") for i in range(4)]
    lease = dt.timedelta(seconds=2)
    a = VideoWorker(settings, "video-a", lease=lease)
    b = VideoWorker(settings, "video-b", lease=lease)
    try:
        a.balance()
        assert sorted(a.readers) == cameras                              # alone: all of them
        b.balance()
        assert not b.readers                                             # nothing free yet
        a.balance()                                                      # two workers now: it lets half go
        b.balance()
        assert len(a.readers) == len(b.readers) == 2 and set(a.readers).isdisjoint(b.readers)
        # a dies (stops renewing); within one lease period its cameras are b's
        time.sleep(lease.total_seconds() + 0.5)
        b.balance()
        assert sorted(b.readers) == cameras
        owners = {r["lease_owner"] for r in db.execute("SELECT lease_owner FROM camera")}
        assert owners == {"video-b"}
        a.balance()                                                      # a comes back: it learns it lost them
        assert not a.readers
    finally:
        a.shutdown()
        b.shutdown()


def test_a_killed_worker_process_hands_its_cameras_on_within_a_lease_period(db, db_url, settings, tiny_city):
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import TEST_SECRET

    cameras = [_camera(db, f"路口{i}", f"http://127.0.0.1:{_closed_port()}/{i}") for i in range(3)]
    env = {**os.environ, "CITYGRID_DATABASE_URL": db_url, "CITYGRID_SECRET_KEY": TEST_SECRET, "CITYGRID_DEMO": "0",
           "CITYGRID_CAMERA_LEASE_SECONDS": "3", "CITYGRID_DATA_DIR": str(settings.data_dir)}
    doomed = subprocess.Popen([sys.executable, "-m", "command.cli", "video", "--name", "doomed"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        held = _wait(db, "SELECT count(*) = %s AS all_held FROM camera WHERE lease_owner = 'doomed'", (len(cameras),),
                     timeout=30)
        assert held["all_held"], "the worker process did not take the cameras"
        doomed.send_signal(signal.SIGKILL)                           # no goodbye: its leases just lapse
        doomed.wait(10)
        heir = VideoWorker(settings, "heir", lease=dt.timedelta(seconds=3))
        thread = threading.Thread(target=heir.run, daemon=True)
        thread.start()
        try:
            moved = _wait(db, "SELECT count(*) = %s AS all_moved FROM camera WHERE lease_owner = 'heir'",
                          (len(cameras),), timeout=30)
        finally:
            heir.stop()
            thread.join(15)
        assert moved["all_moved"]              # (how soon: the lease test above, on a clock it controls)
    finally:
        doomed.kill()
        doomed.wait(10)
