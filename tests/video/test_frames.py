"""Frame sources against real ffmpeg (and OpenCV's in-process decoder): files, an HTTP MJPEG
camera, and cameras that fail in each of the ways cameras fail."""
from __future__ import annotations

import random
import socket
import time

import numpy as np
import pytest

from video.frames import Backoff, FrameSourceError, open_source
from video.test_streams import make_street_video, rtsp_available, serve_garbage, serve_mjpeg, serve_rtsp, serve_silent


@pytest.fixture(params=["ffmpeg", "opencv"])
def decoder(request) -> str:
    return request.param


def looks_like_the_street(frame: np.ndarray) -> bool:
    """The road (middle band) is darker than the pavement below it: a decoded street, not noise."""
    h = frame.shape[0]
    road = frame[int(0.55 * h):int(0.65 * h)].mean()
    pavement = frame[int(0.82 * h):int(0.86 * h)].mean()
    return pavement - road > 40


def test_a_file_is_read_at_the_requested_fps_and_width(street, decoder):
    path, truth = street
    with open_source(str(path), fps=5, width=320, decoder=decoder) as src:
        assert src.size == (320, 180)
        stamps = []
        while True:
            try:
                ts, frame = src.read()
            except FrameSourceError as e:
                assert e.reason == "ended"
                break
            assert frame.shape == (180, 320, 3) and frame.dtype == np.uint8
            stamps.append(ts)
    assert len(stamps) == pytest.approx(truth.seconds * 5, abs=1)      # 10 fps thinned to 5
    assert np.allclose(np.diff(stamps), 0.2, atol=1e-6)                 # stamped by stream position
    assert looks_like_the_street(frame)


def test_a_file_url_in_real_time_plays_at_its_speed_and_loops(tmp_path, decoder):
    path = tmp_path / "short.mp4"
    make_street_video(path, seconds=1, fps=10)
    start = time.monotonic()
    with open_source(path.as_uri(), fps=5, realtime=True, decoder=decoder) as src:
        frames = [src.read()[1] for _ in range(8)]                        # 1.6 s of a 1 s clip
    elapsed = time.monotonic() - start
    assert elapsed >= 1.3                                                 # paced, not as fast as decoded
    assert all(f.shape == (360, 640, 3) for f in frames)                  # and it looped instead of ending


def test_an_http_mjpeg_camera_is_read(street, decoder):
    path, _ = street
    with serve_mjpeg(path, fps=10) as server, open_source(server.url, fps=5, width=320, open_timeout=10,
                                                                decoder=decoder) as src:
        assert src.size == (320, 180)
        before = time.time()
        frames = [src.read() for _ in range(5)]
    assert all(looks_like_the_street(f) for _, f in frames)
    assert all(before - 1 <= ts <= time.time() for ts, _ in frames)      # live streams: wall-clock stamps


@pytest.mark.skipif(not rtsp_available(), reason="no GStreamer RTSP server here (scripts/setup.sh installs it)")
def test_an_rtsp_camera_is_read_over_tcp(street, decoder):
    path, _ = street
    with serve_rtsp(path) as server, open_source(server.url, fps=5, width=320, decoder=decoder) as src:
        assert src.size == (320, 180)
        frames = [src.read() for _ in range(3)]
    assert all(looks_like_the_street(f) for _, f in frames)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def failure(url: str, **kw) -> tuple[FrameSourceError, float, int]:
    """The error opening/reading `url` raised, how long it took, and the frames read before."""
    start, frames = time.monotonic(), 0
    with pytest.raises(FrameSourceError) as caught:
        with open_source(url, **kw) as src:
            for _ in range(1000):
                src.read()
                frames += 1
    return caught.value, time.monotonic() - start, frames


def test_a_camera_that_does_not_answer_is_unreachable_within_the_open_timeout(decoder):
    error, took, _ = failure(f"http://127.0.0.1:{closed_port()}/video", open_timeout=3, decoder=decoder)
    assert error.reason in ("unreachable", "timeout") and took < 3.5
    assert "refused" in error.message                                     # ffmpeg's words are kept


def test_a_camera_that_accepts_and_says_nothing_times_out(decoder):
    with serve_silent() as server:
        error, took, _ = failure(server.url, open_timeout=2, read_timeout=1, decoder=decoder)
    assert error.reason == "timeout" and 1.9 <= took < 3.5


def test_a_camera_that_sends_garbage_is_a_bad_stream(decoder):
    with serve_garbage() as server:
        error, took, _ = failure(server.url, open_timeout=8, decoder=decoder)
    assert error.reason == "bad_stream" and took < 8


def test_a_stream_that_drops_midway_ends(street, decoder):
    path, _ = street
    with serve_mjpeg(path, fps=20, drop_after_frames=8) as server:
        error, _, frames = failure(server.url, fps=20, read_timeout=3, decoder=decoder)
    assert error.reason in ("ended", "timeout")
    assert 3 <= frames <= 8                       # some frames came first (ffmpeg probes a few)


def test_a_stream_that_stalls_times_out_after_the_read_timeout(street, decoder):
    path, _ = street
    with serve_mjpeg(path, fps=20, stall_after_frames=8) as server:
        with open_source(server.url, fps=20, read_timeout=1.5, decoder=decoder) as src:
            frames = 0
            with pytest.raises(FrameSourceError) as caught:
                while True:
                    src.read()
                    frames += 1
                    stalled_since = time.monotonic()
    assert caught.value.reason == "timeout" and frames >= 3
    assert 1.4 <= time.monotonic() - stalled_since < 3


@pytest.mark.parametrize("url, reason", [
    ("ftp://camera.example/stream", "unsupported"),
    ("onvif://10.0.0.1/", "unsupported"),
    ("/no/such/clip.mp4", "unreachable"),
    ("file:///no/such/clip.mp4", "unreachable"),
])
def test_urls_that_cannot_be_read_say_why(url, reason, decoder):
    with pytest.raises(FrameSourceError) as caught:
        open_source(url, decoder=decoder)
    assert caught.value.reason == reason


def test_a_password_in_the_url_is_not_repeated_in_errors(decoder):
    error, _, _ = failure(f"http://admin:s3cret@127.0.0.1:{closed_port()}/video", open_timeout=3, decoder=decoder)
    assert "s3cret" not in str(error) and "admin:***@" in str(error)


def test_backoff_doubles_to_its_cap_and_resets():
    backoff = Backoff(initial=1, maximum=60, jitter=0)
    assert [backoff.next() for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    backoff.reset()
    assert backoff.next() == 1
    jittered = Backoff(initial=10, jitter=0.1, rng=random.Random(3))
    delays = [jittered.next() for _ in range(2)]
    assert 9 <= delays[0] <= 11 and 18 <= delays[1] <= 22 and delays[0] != 10
