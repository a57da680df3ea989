"""`citygrid video`: a camera worker (视频分析). It holds cameras by lease (video.leases), runs
one reader thread per camera — frames from its sub-stream at the camera's analysis fps,
motion, motion events and dwell — and writes what they find from its own thread, which alone
talks to the database.

A camera that does not answer, answers slowly, sends garbage or drops is marked offline
with the reason and tried again with backoff; the others run on. A lease this worker loses
(the camera switched off, or a stall long enough for another worker to take it) stops that
camera's reader here."""
from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from dataclasses import dataclass

import cv2
import psycopg

from gis.config import Settings
from gis.db import connect, prepare_app_session
from video import event_store, leases
from video.dwell import DwellDetector, DwellEvent
from video.frames import Backoff, FrameSourceError, open_source
from video.motion import EventChange, MotionDetector, MotionEvents
from video.zones import parse_zones
from workflows.cases import CaseDesk

log = logging.getLogger("citygrid.video")

ANALYSIS_WIDTH = 640                   # sub-streams are analysed at this width at most
STATUS_EVERY_S = 10.0                  # measured fps and last frame time, this often
QUEUE_MAX = 1000                       # findings waiting for the database (readers block beyond)


@dataclass
class Found:
    """What a reader hands to the worker thread."""
    camera_id: int
    kind: str                          # status | motion | dwell
    online: bool | None = None
    reason: str | None = None
    fps: float | None = None
    frame_at: dt.datetime | None = None
    change: EventChange | None = None
    dwell: DwellEvent | None = None
    size: tuple[int, int] = (0, 0)


class CameraReader(threading.Thread):
    """One camera: open, read, analyse; on failure report it and retry with backoff."""

    def __init__(self, camera: dict, out: queue.Queue, *, dwell_s: float, realtime: bool = True,
                 dismissed: list[dict] = (), decoder: str = "opencv"):
        super().__init__(daemon=True, name=f"camera-{camera['id']}")
        self.camera, self.out, self.decoder = camera, out, decoder
        self.dwell_s, self.realtime, self.dismissed = dwell_s, realtime, list(dismissed)
        self.stop_event = threading.Event()
        self.zones = parse_zones(camera["zones"])
        self.dwell: DwellDetector | None = None

    def dismiss(self, box: list[float], at: float) -> None:
        """An operator dismissed an object ([x0, y0, x1, y1] shares of the picture): keep it for
        a detector made after a reconnect, and tell the running one."""
        x0, y0, x1, y1 = box
        self.dismissed.append({"box": [x0, y0, x1 - x0, y1 - y0], "at": at})
        dwell = self.dwell
        if dwell is not None:
            w, h = dwell.frame_size
            dwell.dismiss((round(x0 * w), round(y0 * h), round((x1 - x0) * w), round((y1 - y0) * h)), at)

    def run(self) -> None:
        backoff = Backoff()
        url = self.camera["sub_url"] or self.camera["url"]
        while not self.stop_event.is_set():
            try:
                with open_source(url, fps=self.camera["analysis_fps"], width=ANALYSIS_WIDTH,
                                 realtime=self.realtime, decoder=self.decoder) as source:
                    self._analyse(source, backoff)
            except FrameSourceError as e:
                self.out.put(Found(self.camera["id"], "status", online=False, reason=f"{e.reason}: {e}"))
                log.info("camera %s: %s (%s)", self.camera["id"], e.reason, e)
            self.stop_event.wait(backoff.next())

    def _analyse(self, source, backoff: Backoff) -> None:
        camera_id, size, ts = self.camera["id"], None, time.time()
        motion = events = dwell = None
        frames, window_start = 0, time.monotonic()
        try:
            while not self.stop_event.is_set():
                ts, frame = source.read()
                if size is None:                           # the first picture: now its size is known
                    size = (frame.shape[1], frame.shape[0])
                    motion = MotionDetector(size, self.zones)
                    events = MotionEvents(str(camera_id), zones=self.zones)
                    dwell = self.dwell = DwellDetector(str(camera_id), size, self.zones, dwell_s=self.dwell_s,
                                                       dismissed=self.dismissed)
                    backoff.reset()
                    self.out.put(Found(camera_id, "status", online=True, frame_at=_utc(ts)))
                moved = motion.detect(frame, ts)
                for change in events.update(moved, frame, ts):
                    self.out.put(Found(camera_id, "motion", change=change, size=size))
                for found in dwell.update(frame, ts, moved):
                    self.out.put(Found(camera_id, "dwell", dwell=found, size=size))
                frames += 1
                elapsed = time.monotonic() - window_start
                if elapsed >= STATUS_EVERY_S:
                    self.out.put(Found(camera_id, "status", online=True, fps=round(frames / elapsed, 2),
                                       frame_at=_utc(ts)))
                    frames, window_start = 0, time.monotonic()
        finally:
            if events is not None:                         # an open motion event ends with the stream
                for change in events.close(ts):
                    self.out.put(Found(camera_id, "motion", change=change, size=size))


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


_CAMERA = ("SELECT id, name, url, sub_url, zones, analysis_fps, ST_X(location) AS lon, ST_Y(location) AS lat"
           " FROM camera WHERE id = ANY(%s)")


class VideoWorker:
    def __init__(self, settings: Settings, name: str, *, lease: dt.timedelta | None = None,
                 dwell_s: float | None = None, realtime: bool = True):
        self.settings, self.name = settings, name
        self.lease = lease or dt.timedelta(seconds=settings.camera_lease_seconds)
        self.dwell_s = dwell_s if dwell_s is not None else settings.dwell_minutes * 60
        self.realtime = realtime
        self.readers: dict[int, CameraReader] = {}
        self.cameras: dict[int, dict] = {}
        self.found: queue.Queue[Found] = queue.Queue(QUEUE_MAX)
        self.stop_event = threading.Event()
        self.desk = CaseDesk.default()
        self._conn: psycopg.Connection | None = None
        self._dismissals_seen: int | None = None   # the newest camera_dismissal passed on to the readers
        # Cameras run side by side in threads: OpenCV's own pool would only add overhead
        # (twice the CPU for the motion stage, measured in bench/bench_video.py).
        cv2.setNumThreads(1)

    def _db(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.settings.database_url)
            prepare_app_session(self._conn, self.settings.db_app_role)
        return self._conn

    def run(self) -> None:
        next_lease = 0.0
        try:
            while not self.stop_event.is_set():
                if time.monotonic() >= next_lease:
                    try:
                        self.balance()
                    except psycopg.OperationalError as e:
                        log.warning("database unavailable (%s); keeping the cameras a while", e)
                        self._conn = None
                    next_lease = time.monotonic() + self.lease.total_seconds() / 3
                self.drain(timeout=0.2)
        finally:
            self.shutdown()

    def balance(self) -> None:
        """Renew; stop what was lost; let the excess over the fair share go; claim up to it."""
        conn = self._db()
        if self._dismissals_seen is None:           # cameras claimed from now on load theirs when claimed
            self._dismissals_seen = conn.execute("SELECT coalesce(max(id), 0) AS n FROM camera_dismissal").fetchone()["n"]
        with conn.transaction():
            kept = leases.renew(conn, self.name, list(self.readers), self.lease)
        for camera_id in set(self.readers) - kept:
            log.info("camera %s is no longer ours", camera_id)
            self._stop_reader(camera_id)
        with conn.transaction():
            share = leases.fair_share(conn, self.name, self.lease)
            excess = sorted(self.readers, reverse=True)[:max(0, len(self.readers) - share)]
            leases.release(conn, self.name, excess)
        for camera_id in excess:
            self._stop_reader(camera_id)
        with conn.transaction():
            claimed = [r["id"] for r in leases.claim(conn, self.name, share - len(self.readers), self.lease)]
        if claimed:
            for camera in conn.execute(_CAMERA, (claimed,)).fetchall():
                self._start_reader(camera, event_store.dismissals(conn, camera["id"]))
        self._pass_on_dismissals(conn)

    def _pass_on_dismissals(self, conn: psycopg.Connection) -> None:
        """Objects operators dismissed since the last look reach the cameras' detectors."""
        rows = conn.execute("SELECT id, camera_id, box, extract(epoch FROM dismissed_at) AS at FROM camera_dismissal"
                            " WHERE id > %s AND camera_id = ANY(%s) ORDER BY id",
                            (self._dismissals_seen, list(self.readers))).fetchall()
        for r in rows:
            self.readers[r["camera_id"]].dismiss(r["box"], float(r["at"]))
        if rows:
            self._dismissals_seen = rows[-1]["id"]

    def _start_reader(self, camera: dict, dismissed: list[dict]) -> None:
        log.info("analysing camera %s (%s)", camera["id"], camera["name"])
        self.cameras[camera["id"]] = camera
        reader = CameraReader(camera, self.found, dwell_s=self.dwell_s, realtime=self.realtime, dismissed=dismissed,
                              decoder=self.settings.video_decoder)
        self.readers[camera["id"]] = reader
        reader.start()

    def _stop_reader(self, camera_id: int) -> None:
        reader = self.readers.pop(camera_id, None)
        if reader is not None:
            reader.stop_event.set()

    def drain(self, timeout: float) -> int:
        """Write what the readers found; a database outage keeps it queued (readers block when
        the queue is full, so nothing is dropped)."""
        written = 0
        try:
            item = self.found.get(timeout=timeout)
        except queue.Empty:
            return 0
        while item is not None:
            self._write(item)
            written += 1
            try:
                item = self.found.get_nowait()
            except queue.Empty:
                item = None
        return written

    def _write(self, item: Found) -> None:
        camera = self.cameras.get(item.camera_id)
        if camera is None:
            return
        data_dir = self.settings.data_dir
        while not self.stop_event.is_set():
            try:
                conn = self._db()
                if item.kind == "status":
                    event_store.set_status(conn, item.camera_id, self.name, online=item.online, reason=item.reason,
                                           fps=item.fps, frame_at=item.frame_at)
                elif item.kind == "motion":
                    event_store.record_motion(conn, camera, item.change, item.size, data_dir)
                else:
                    event_store.record_dwell(conn, camera, item.dwell, item.size, data_dir, self.desk, self.name)
                return
            except psycopg.OperationalError as e:
                log.warning("database unavailable (%s); retrying", e)
                self._conn = None
                self.stop_event.wait(2.0)

    def shutdown(self) -> None:
        for camera_id in list(self.readers):
            reader = self.readers[camera_id]
            self._stop_reader(camera_id)
            reader.join(5)
        self.drain(timeout=0.1)
        try:
            with self._db().transaction():
                leases.release(self._db(), self.name, list(self.cameras), leaving=True)
        except psycopg.Error:
            pass                                            # the leases lapse on their own
        if self._conn is not None:
            self._conn.close()

    def stop(self) -> None:
        self.stop_event.set()
