"""Test cameras that exist on this machine (测试视频流): a generated street (road, pavements,
buildings, sensor noise) with passers-by, a vehicle and an object that is left on the
pavement and stays, written as real H.264 and served as HTTP MJPEG, with its ground truth
so tests can check what the analysis found. Used by the tests, the bench and the demo.

    truth = make_street_video("street.mp4", seconds=60)
    with serve_mjpeg("street.mp4") as server:     # server.url → http://127.0.0.1:PORT/
        ...

An RTSP camera: `serve_rtsp(path)` (GStreamer's RTSP server, when Debian's packages are
installed: `rtsp_available()`). Faulty cameras for the tests of the worker:
`serve_garbage()` (answers with noise) and `serve_silent()` (accepts the connection, never
answers)."""
from __future__ import annotations

import http.server
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

Box = tuple[int, int, int, int]            # x, y, w, h in pixels

# The scene's layout as shares of the picture height: buildings, far pavement, road, near pavement.
BUILDINGS_END, ROAD_START, ROAD_END = 0.38, 0.50, 0.80
LANES = {"upper": 0.47, "lower": 0.93, "road": 0.72}    # where a walker's feet / a vehicle's wheels are

# Event kinds: walker, vehicle (lane "road"), carrier (a walker who puts a bag down at drop_x
# and walks on), object (a bag at x from `at` until `until`), lights (the whole picture
# brightens by `delta` at `at`). Speeds in pixels a second, negative right to left.
# 60 s of street. Gaps between passers-by are longer than a motion event's 3 s tail, so each
# makes its own event; the last walker passes in front of the left object.
DEFAULT_EVENTS: tuple[dict, ...] = (
    {"kind": "walker", "at": 2.0, "lane": "lower", "speed": 70},
    {"kind": "vehicle", "at": 17.0, "speed": -220},
    {"kind": "walker", "at": 25.0, "lane": "upper", "speed": -60},
    {"kind": "carrier", "at": 40.0, "lane": "lower", "speed": 70, "drop_x": 0.68},
    {"kind": "walker", "at": 52.0, "lane": "lower", "speed": -80},
)


@dataclass
class Sighting:
    """One thing in the clip: when it is in the picture (stream seconds) and what it is."""
    kind: str                       # walker, vehicle, carrier, left_object, object, lights
    enter: float
    leave: float                    # the clip's end for a left object that stays
    lane: str = ""
    box: Box | None = None          # where a still object lies, full-res pixels


@dataclass
class StreetTruth:
    """What the clip shows, to assert against."""
    size: tuple[int, int]
    fps: float
    seconds: float
    sightings: list[Sighting] = field(default_factory=list)
    left_object: Box | None = None            # where the left object lies, full-res pixels
    left_at: float | None = None              # when it was put down

    def movers(self) -> list[Sighting]:
        return [s for s in self.sightings if s.kind in ("walker", "vehicle", "carrier")]


class StreetScene:
    """Renders the street at time t. Deterministic for a seed, so tests may render frames in
    memory instead of decoding the file."""

    def __init__(self, *, size: tuple[int, int] = (640, 360), seed: int = 7, events: Sequence[dict] = DEFAULT_EVENTS,
                 seconds: float = 60.0, fps: float = 10.0):
        self.w, self.h = size
        self.events = [dict(e) for e in events]
        self._rng = np.random.default_rng(seed)
        self.base = self._draw_background()
        # Sensor noise (传感器噪声): a few fixed noise fields picked per frame, as saturating adds
        # and subtracts of uint8 images (drawing fresh Gaussian noise per frame costs more than the rest).
        noise = self._rng.normal(0, 2.5, (8, self.h, self.w, 3))
        self._noise_up = np.clip(noise, 0, 255).astype(np.uint8)
        self._noise_down = np.clip(-noise, 0, 255).astype(np.uint8)
        self._colours = [tuple(int(c) for c in self._rng.choice([20, 60, 200, 230], 3)) for _ in self.events]
        self.truth = self._truth(seconds, fps)

    def _draw_background(self) -> np.ndarray:
        w, h = self.w, self.h
        img = np.zeros((h, w, 3), np.uint8)
        y_b, y_r, y_e = int(BUILDINGS_END * h), int(ROAD_START * h), int(ROAD_END * h)
        img[:y_b] = (150, 140, 130)
        x = 0
        while x < w:                                     # buildings of different widths and colours, with windows
            bw = int(self._rng.integers(w // 10, w // 4))
            top = int(self._rng.integers(0, y_b // 3))
            colour = tuple(int(c) for c in self._rng.integers(70, 190, 3))
            cv2.rectangle(img, (x, top), (x + bw - 2, y_b), colour, -1)
            for wy in range(top + 8, y_b - 12, 18):
                for wx in range(x + 6, x + bw - 12, 16):
                    lit = self._rng.random() < 0.3
                    cv2.rectangle(img, (wx, wy), (wx + 7, wy + 9), (90, 200, 230) if lit else (60, 50, 40), -1)
            x += bw
        img[y_b:y_r] = (165, 165, 160)                   # far pavement
        img[y_r:y_e] = (75, 75, 80)                      # road
        img[y_e:] = (160, 160, 155)                      # near pavement
        for xs in range(0, w, w // 16):                  # paving joints and kerbs
            cv2.line(img, (xs, y_e), (xs, h), (140, 140, 135), 1)
        cv2.line(img, (0, y_r), (w, y_r), (200, 200, 200), 2)
        cv2.line(img, (0, y_e), (w, y_e), (200, 200, 200), 2)
        lane_y = (y_r + y_e) // 2
        for xs in range(0, w, w // 8):                   # lane dashes
            cv2.line(img, (xs, lane_y), (xs + w // 16, lane_y), (220, 220, 220), 2)
        texture = self._rng.normal(0, 6, img.shape)      # fixed texture so the scene is not flat
        return np.clip(img + texture, 0, 255).astype(np.uint8)

    # --- where things are -------------------------------------------------------------------

    def _walker_size(self) -> tuple[int, int]:
        return max(6, int(0.025 * self.w)), max(16, int(0.14 * self.h))

    def _vehicle_size(self) -> tuple[int, int]:
        return int(0.22 * self.w), int(0.15 * self.h)

    def _bag_size(self) -> tuple[int, int]:
        return int(0.06 * self.w), int(0.09 * self.h)

    def _mover_box(self, e: dict, t: float) -> Box:
        """The box of a walker/vehicle/carrier at time t (it may be off the picture)."""
        bw, bh = self._vehicle_size() if e["kind"] == "vehicle" else self._walker_size()
        speed = e["speed"]
        x0 = -bw if speed > 0 else self.w
        x = x0 + speed * (t - e["at"])
        feet = int(LANES["road" if e["kind"] == "vehicle" else e.get("lane", "lower")] * self.h)
        return int(round(x)), feet - bh, bw, bh

    def _bag_box(self, e: dict) -> Box:
        bw, bh = self._bag_size()
        feet = int(LANES[e.get("lane", "lower")] * self.h)
        return int(e.get("drop_x", e.get("x", 0.5)) * self.w) - bw // 2, feet - bh - 2, bw, bh

    def _drop_time(self, e: dict) -> float:
        """A carrier puts the bag down when its middle reaches drop_x."""
        ww, _ = self._walker_size()
        x_target = e["drop_x"] * self.w - ww / 2
        x0 = -ww if e["speed"] > 0 else self.w
        return e["at"] + (x_target - x0) / e["speed"]

    def _truth(self, seconds: float, fps: float) -> StreetTruth:
        truth = StreetTruth((self.w, self.h), fps, seconds)
        for e in self.events:
            if e["kind"] == "lights":
                truth.sightings.append(Sighting("lights", e["at"], e["at"]))
                continue
            if e["kind"] == "object":                   # there from `at` until `until` (taken away at once)
                truth.sightings.append(Sighting("object", e["at"], min(e.get("until", seconds), seconds),
                                                e.get("lane", "lower"), self._bag_box(e)))
                continue
            # A mover starts just off the picture, so it is in it from `at` until it has
            # travelled the picture's width and its own.
            bw = (self._vehicle_size() if e["kind"] == "vehicle" else self._walker_size())[0]
            leave = e["at"] + (self.w + bw) / abs(e["speed"])
            truth.sightings.append(Sighting(e["kind"], e["at"], min(leave, seconds), e.get("lane", "road")))
            if e["kind"] == "carrier":
                truth.left_at = self._drop_time(e)
                truth.left_object = self._bag_box(e)
                truth.sightings.append(Sighting("left_object", truth.left_at, seconds, e.get("lane", "lower"),
                                                truth.left_object))
        return truth

    # --- drawing ----------------------------------------------------------------------------

    def frame(self, t: float, k: int = 0) -> np.ndarray:
        """The picture at stream time t (k picks the noise field)."""
        img = self.base.copy()
        for e, colour in zip(self.events, self._colours):
            if e["kind"] == "object" and e["at"] <= t < e.get("until", float("inf")):
                self._draw_bag(img, self._bag_box(e))
            elif e["kind"] == "vehicle" and t >= e["at"]:
                self._draw_vehicle(img, self._mover_box(e, t), colour)
            elif e["kind"] in ("walker", "carrier") and t >= e["at"]:
                box = self._mover_box(e, t)
                self._draw_walker(img, box, colour, t)
                if e["kind"] == "carrier":
                    if t < self._drop_time(e):
                        bw, bh = self._bag_size()
                        self._draw_bag(img, (box[0] + box[2], box[1] + box[3] - bh - 4, bw, bh))
                    else:
                        self._draw_bag(img, self._bag_box(e))
        for e in self.events:                             # lights: the whole picture brightens at once
            if e["kind"] == "lights" and t >= e["at"]:
                delta = e.get("delta", 60)
                img = cv2.add(img, np.full_like(img, delta)) if delta > 0 else cv2.subtract(img, np.full_like(img, -delta))
        img = cv2.add(img, self._noise_up[k % len(self._noise_up)])
        return cv2.subtract(img, self._noise_down[(k * 5 + 3) % len(self._noise_down)])

    @staticmethod
    def _draw_walker(img: np.ndarray, box: Box, colour: tuple, t: float) -> None:
        x, y, w, h = box
        head = max(3, w // 2)
        cv2.circle(img, (x + w // 2, y + head), head, (60, 80, 120), -1)
        cv2.ellipse(img, (x + w // 2, y + h // 2), (w // 2, h // 3), 0, 0, 360, colour, -1)
        swing = int(w * 0.6 * np.sin(t * 6))                # legs moving
        cv2.line(img, (x + w // 2, y + 2 * h // 3), (x + w // 2 + swing, y + h), (40, 40, 50), 2)
        cv2.line(img, (x + w // 2, y + 2 * h // 3), (x + w // 2 - swing, y + h), (40, 40, 50), 2)

    @staticmethod
    def _draw_vehicle(img: np.ndarray, box: Box, colour: tuple) -> None:
        x, y, w, h = box
        cv2.rectangle(img, (x, y + h // 3), (x + w, y + h - h // 6), colour, -1)
        cv2.rectangle(img, (x + w // 5, y), (x + 4 * w // 5, y + h // 3), colour, -1)
        cv2.rectangle(img, (x + w // 4, y + 3), (x + 3 * w // 4, y + h // 3 - 1), (200, 170, 120), -1)
        for wx in (x + w // 5, x + 4 * w // 5):
            cv2.circle(img, (wx, y + h - h // 6), h // 6, (20, 20, 20), -1)

    @staticmethod
    def _draw_bag(img: np.ndarray, box: Box) -> None:
        """A dark green rubbish bag (垃圾袋) with a knot."""
        x, y, w, h = box
        cv2.ellipse(img, (x + w // 2, y + h // 2 + 2), (w // 2, h // 2 - 2), 0, 0, 360, (40, 70, 30), -1)
        cv2.ellipse(img, (x + w // 3, y + h // 2), (w // 6, h // 4), 20, 0, 360, (60, 95, 45), -1)
        cv2.circle(img, (x + w // 2, y + 3), 3, (30, 50, 20), -1)


def make_street_video(path: str | os.PathLike, *, seconds: float = 60.0, fps: float = 10.0,
                      size: tuple[int, int] = (640, 360), seed: int = 7,
                      events: Sequence[dict] = DEFAULT_EVENTS, bitrate: str | None = None) -> StreetTruth:
    """Write the street clip as H.264 (yuv420p, no B-frames, a key frame every 2 s, as
    cameras send) and return its ground truth. Events later than `seconds` are left out.
    `bitrate` (e.g. "512k"): a constant rate as cameras use, so the sensor noise is encoded
    rather than smoothed away (decoding then costs what a camera's stream costs); None:
    constant quality, smaller and faster."""
    scene = StreetScene(size=size, seed=seed, events=[e for e in events if e["at"] < seconds],
                        seconds=seconds, fps=fps)
    w, h = size
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
               "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "pipe:0", "-an", "-c:v", "libx264", "-preset", "veryfast",
               "-pix_fmt", "yuv420p", "-bf", "0", "-g", str(int(2 * fps)),
               *(["-b:v", bitrate, "-minrate", bitrate, "-maxrate", bitrate, "-bufsize", bitrate] if bitrate else []),
               str(path)]
    encoder = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for k in range(int(round(seconds * fps))):
            encoder.stdin.write(scene.frame(k / fps, k).tobytes())
        encoder.stdin.close()
    except BrokenPipeError:
        pass
    if encoder.wait() != 0:
        raise RuntimeError(f"ffmpeg could not write {path}: {encoder.stderr.read().decode(errors='replace')[-500:]}")
    encoder.stderr.close()
    return scene.truth


# --- HTTP MJPEG ------------------------------------------------------------------------------

BOUNDARY = "citygridframe"


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: MjpegServer


class MjpegServer:
    """An HTTP MJPEG camera (multipart/x-mixed-replace, as IP cameras serve it) on
    127.0.0.1, looping a file or a list of frames at `fps`. One producer encodes each frame
    once, however many clients. Faults for tests: `drop_after_frames` closes each client's
    connection after that many frames; `stall_after_frames` stops sending but keeps it open."""

    def __init__(self, source: str | os.PathLike | Sequence[np.ndarray], port: int = 0, *, fps: float = 10.0,
                 quality: int = 80, drop_after_frames: int | None = None, stall_after_frames: int | None = None):
        self.fps = fps
        self.drop_after_frames = drop_after_frames
        self.stall_after_frames = stall_after_frames
        self._quality = quality
        self._source = source
        self._latest: tuple[int, bytes] | None = None
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", port), _MjpegHandler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._threads = [threading.Thread(target=self._produce, name="mjpeg-producer", daemon=True),
                         threading.Thread(target=self._httpd.serve_forever, name="mjpeg-http", daemon=True)]
        for th in self._threads:
            th.start()
        with self._changed:                             # serve only once there is a frame to send
            if not self._changed.wait_for(lambda: self._latest is not None or self._stopping.is_set(), 15):
                self.stop()
                raise RuntimeError(f"no frame from {source!r} in 15 s")

    def _frames(self) -> Iterable[np.ndarray]:
        if isinstance(self._source, (str, os.PathLike)):
            from video.frames import open_source        # here: frames.py does not need this module
            while not self._stopping.is_set():
                with open_source(str(self._source), fps=self.fps, realtime=True) as src:
                    while not self._stopping.is_set():
                        yield src.read()[1]
        else:
            while not self._stopping.is_set():
                yield from self._source

    def _produce(self) -> None:
        """Encode frames at `fps` (a file source paces itself; a list is paced here)."""
        paced = not isinstance(self._source, (str, os.PathLike))
        next_at = time.monotonic()
        for seq, frame in enumerate(self._frames()):
            if self._stopping.is_set():
                break
            if paced:
                next_at += 1 / self.fps
                if self._stopping.wait(max(0.0, next_at - time.monotonic())):
                    break
            ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
            with self._changed:
                self._latest = (seq, jpeg.tobytes())
                self._changed.notify_all()

    def next_frame(self, after: int) -> tuple[int, bytes] | None:
        """The first frame newer than `after`, waiting for it; None once stopping."""
        with self._changed:
            self._changed.wait_for(lambda: self._stopping.is_set() or (self._latest and self._latest[0] > after), 5)
            return None if self._stopping.is_set() else self._latest

    def stop(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> MjpegServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class _MjpegHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:            # quiet: tests read their own output
        pass

    def do_GET(self) -> None:
        server: MjpegServer = self.server.owner
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        seq, sent = -1, 0
        try:
            while True:
                if server.drop_after_frames is not None and sent >= server.drop_after_frames:
                    return                              # the connection drops mid-stream
                if server.stall_after_frames is not None and sent >= server.stall_after_frames:
                    server._stopping.wait()             # silent, connection held open
                    return
                latest = server.next_frame(seq)
                if latest is None:
                    return
                seq, jpeg = latest
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                 .encode() + jpeg + b"\r\n")
                sent += 1
        except (BrokenPipeError, ConnectionResetError):
            return


def serve_mjpeg(path_or_frames: str | os.PathLike | Sequence[np.ndarray], port: int = 0, **options) -> MjpegServer:
    """Serve a file (looped, real time) or frames as an HTTP MJPEG stream; see MjpegServer."""
    return MjpegServer(path_or_frames, port, **options)


# --- faulty cameras ----------------------------------------------------------------------------

class _RawServer:
    """A TCP server on 127.0.0.1 whose every connection is handled by `serve(conn)`."""

    def __init__(self, serve, port: int = 0):
        self._serve = serve
        self._sock = socket.create_server(("127.0.0.1", port))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._stopping = threading.Event()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self._serve(conn, self._stopping)
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self) -> None:
        self._stopping.set()
        self._sock.close()
        for c in self._conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_garbage(port: int = 0, *, size: int = 256 * 1024, seed: int = 1) -> _RawServer:
    """A 'camera' that answers HTTP 200 with random bytes, then closes."""
    junk = np.random.default_rng(seed).integers(0, 256, size, np.uint8).tobytes()

    def serve(conn: socket.socket, stopping: threading.Event) -> None:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n" + junk)

    return _RawServer(serve, port)


def serve_silent(port: int = 0) -> _RawServer:
    """A 'camera' that accepts the connection and never says a word."""

    def serve(conn: socket.socket, stopping: threading.Event) -> None:
        stopping.wait()

    return _RawServer(serve, port)


# --- RTSP ---------------------------------------------------------------------------------------

SYSTEM_PYTHON = "/usr/bin/python3"          # has Debian's GObject bindings; the virtualenv has not
RTSP_SERVER = Path(__file__).with_name("rtsp_server.py")


def rtsp_available() -> bool:
    """Whether this machine can serve RTSP (python3-gi, gir1.2-gst-rtsp-server-1.0 and the
    GStreamer plugins it needs)."""
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
             "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
             "assert all(Gst.ElementFactory.find(e) for e in ('appsrc', 'h264parse', 'rtph264pay'))")
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class RtspServer:
    """video/rtsp_server.py in its own process, serving an H.264 file looped at rtsp://127.0.0.1:PORT/PATH."""

    def __init__(self, path: str | os.PathLike, port: int = 0, mount: str = "/street", ready_timeout: float = 15.0):
        self._process = subprocess.Popen([SYSTEM_PYTHON, str(RTSP_SERVER), str(path), "--port", str(port),
                                          "--path", mount], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         stdin=subprocess.DEVNULL)
        ready, _, _ = select.select([self._process.stdout], [], [], ready_timeout)
        line = self._process.stdout.readline().decode() if ready else ""
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"the RTSP server did not start: {self._process.stderr.read().decode()[-500:]}")
        self.url = line.split()[1]
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._process.stdout.close()
        self._process.stderr.close()

    def __enter__(self) -> RtspServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_rtsp(path: str | os.PathLike, port: int = 0, mount: str = "/street") -> RtspServer:
    """Serve an H.264 file (e.g. from make_street_video) looped as an RTSP camera."""
    return RtspServer(path, port, mount)
