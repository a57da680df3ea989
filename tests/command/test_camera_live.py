"""Live pictures for the wall: a snapshot and an MJPEG stream of a real (generated) clip,
one decode shared by every viewer, a camera that gives no picture answered 503 with the
reason, and the token accepted in the URL (an <img> sends no headers)."""
from __future__ import annotations

import socket

import cv2
import numpy as np

from tests.video.conftest import street  # noqa: F401 (fixture: the generated clip)
from video.cameras import NewCamera, add_camera


def _camera(db, url: str) -> int:
    return add_camera(db, NewCamera("建设路东", url, 113.3405, 27.0005, bearing_deg=90, fov_deg=60, range_m=80),
                      actor="test")["id"]


def _token(headers: dict) -> str:
    return headers["Authorization"].split(" ", 1)[1]


def test_a_snapshot_and_an_mjpeg_stream_share_one_decode(client, login, db, street):  # noqa: F811
    path, truth = street
    camera = _camera(db, str(path))
    viewer = login("commander")
    r = client.get(f"/api/cameras/{camera}/snapshot.jpg?width=320", headers=viewer)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    picture = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape[1] == 320 and picture.shape[0] == round(320 * truth.size[1] / truth.size[0])
    with client.stream("GET", f"/api/cameras/{camera}/mjpeg?width=640&token={_token(viewer)}") as stream:
        assert stream.headers["content-type"].startswith("multipart/x-mixed-replace; boundary=")
        seen = b""
        for chunk in stream.iter_bytes():
            seen += chunk
            if seen.count(b"\xff\xd9") >= 2:                      # two whole pictures
                break
        assert seen.startswith(b"--citygrid-frame\r\nContent-Type: image/jpeg")
        assert client.get(f"/api/cameras/{camera}/snapshot.jpg", headers=login("operator")).status_code == 200
        frames = client.app.state.live_frames
        assert list(frames._feeds) == [camera]                       # one reader for every viewer
    assert client.get(f"/api/cameras/{camera}/snapshot.jpg").status_code == 401
    assert client.get(f"/api/cameras/{camera + 99}/snapshot.jpg", headers=viewer).status_code == 404


def test_a_camera_that_gives_no_picture_is_answered_503_with_the_reason(client, login, db):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    camera = _camera(db, f"http://127.0.0.1:{port}/video.mjpg")
    r = client.get(f"/api/cameras/{camera}/snapshot.jpg", headers=login("commander"))
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert f"camera {camera} gives no picture now" in r.text
