"""Live pictures for the video wall (视频上墙): one decode per camera however many people watch.

The first viewer of a camera starts a reader thread on its main stream (at most MAX_FPS);
every frame it reads is JPEG-encoded at most once per width asked for, and every viewer of
that width gets the same bytes. When nobody has asked for a camera for IDLE_S, its reader
stops. A camera that does not answer is reported as such, and asked again after a pause."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import cv2

from video.frames import FrameSourceError, open_source

log = logging.getLogger("citygrid.live_frames")

MAX_FPS = 5.0
IDLE_S = 15.0
RETRY_S = 5.0
WIDTHS = (320, 480, 640, 960, 1280, 1920)


def snap_width(width: int | None) -> int:
    """Widths are rounded up to a few sizes, so viewers share encodings."""
    if not width:
        return 640
    return next((w for w in WIDTHS if w >= width), WIDTHS[-1])


@dataclass
class _Feed:
    url: str
    frame: object = None                       # the latest BGR frame
    seq: int = 0
    error: str | None = None
    wanted_at: float = field(default_factory=time.monotonic)
    jpegs: dict[int, tuple[int, bytes]] = field(default_factory=dict)     # width → (seq, bytes)
    thread: threading.Thread | None = None
    changed: threading.Condition = field(default_factory=threading.Condition)


class LiveFrames:
    def __init__(self, *, open_timeout: float = 8.0, read_timeout: float = 5.0):
        self._feeds: dict[int, _Feed] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.open_timeout, self.read_timeout = open_timeout, read_timeout

    def jpeg(self, camera_id: int, url: str, width: int | None, after_seq: int = 0,
             wait_s: float = 10.0) -> tuple[int, bytes]:
        """The latest frame newer than `after_seq` as JPEG at about `width` pixels: (seq, bytes).
        Waits up to `wait_s` for it; FrameSourceError when the camera does not answer."""
        feed = self._feed(camera_id, url)
        width = snap_width(width)
        deadline = time.monotonic() + wait_s
        with feed.changed:
            while feed.seq <= after_seq:
                if feed.error and feed.frame is None:
                    raise FrameSourceError("unreachable", feed.error)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FrameSourceError("timeout", feed.error or f"no picture from camera {camera_id} yet")
                feed.changed.wait(min(left, 0.5))
                feed.wanted_at = time.monotonic()
            seq, frame = feed.seq, feed.frame
            cached = feed.jpegs.get(width)
            if cached and cached[0] == seq:
                return cached
        h, w = frame.shape[:2]
        small = frame if w <= width else cv2.resize(frame, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
        encoded = (seq, buf.tobytes())
        with feed.changed:
            feed.jpegs[width] = encoded
        return encoded

    def _feed(self, camera_id: int, url: str) -> _Feed:
        with self._lock:
            feed = self._feeds.get(camera_id)
            if feed is None or feed.url != url or not (feed.thread and feed.thread.is_alive()):
                feed = _Feed(url)
                feed.thread = threading.Thread(target=self._read, args=(camera_id, feed), daemon=True,
                                               name=f"live-camera-{camera_id}")
                self._feeds[camera_id] = feed
                feed.thread.start()
            feed.wanted_at = time.monotonic()
            return feed

    def _read(self, camera_id: int, feed: _Feed) -> None:
        """Decode while somebody watches; then let the camera go."""
        while not self._stop.is_set() and time.monotonic() - feed.wanted_at < IDLE_S:
            try:
                with open_source(feed.url, fps=MAX_FPS, open_timeout=self.open_timeout,
                                 read_timeout=self.read_timeout, realtime=True) as source:
                    while not self._stop.is_set() and time.monotonic() - feed.wanted_at < IDLE_S:
                        _, frame = source.read()
                        with feed.changed:
                            feed.frame, feed.seq, feed.error = frame, feed.seq + 1, None
                            feed.changed.notify_all()
            except FrameSourceError as e:
                with feed.changed:
                    feed.error = f"camera {camera_id}: {e}"
                    feed.changed.notify_all()
                log.info("live view of camera %s: %s", camera_id, e)
                self._stop.wait(RETRY_S)
        with self._lock:
            if self._feeds.get(camera_id) is feed:
                del self._feeds[camera_id]

    def close(self) -> None:
        self._stop.set()
