"""Frame sources (视频帧来源): a camera's stream or a file, decoded to BGR frames at the
analysis rate.

Every kind of source goes through one ffmpeg subprocess: `rtsp://`, `http(s)://` (MJPEG or
anything ffmpeg reads) and files (`file://` or a plain path). Files could be read with
OpenCV's VideoCapture, but ffmpeg for all of them means one code path (the same fps/scale
filters, timeouts and error reasons) that the tests exercise on files exactly as the worker
runs it on cameras; `-re -stream_loop -1` gives the demo's real-time looping for free; and
the decode runs in its own process, beside the analysis rather than in it. VideoCapture also
has no read timeout, which a camera that stalls needs.

    with open_source("rtsp://cam/sub", fps=5, width=640) as src:
        ts, frame = src.read()          # wall-clock seconds, BGR uint8 (h, w, 3)

Reconnecting is the worker's job; `Backoff` gives it the delays."""
from __future__ import annotations

import abc
import collections
import fcntl
import io
import os
import random
import re
import select
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np

REASONS = ("unreachable", "timeout", "bad_stream", "ended", "unsupported")
FFMPEG = os.environ.get("CITYGRID_FFMPEG", "ffmpeg")
_F_SETPIPE_SZ = 1031                      # Linux fcntl: a bigger pipe, fewer wake-ups per frame


class FrameSourceError(Exception):
    """A source that cannot give frames; `reason` is a short code for the camera's status."""

    def __init__(self, reason: str, message: str):
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class FrameSource(abc.ABC):
    """What a worker reads frames from: FfmpegSource or OpenCVSource, made by open_source()."""

    url: str
    size: tuple[int, int] | None = None          # (width, height) once known

    @abc.abstractmethod
    def read(self) -> tuple[float, np.ndarray]:
        """(timestamp, BGR frame); FrameSourceError when there is none to give."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop decoding and let go of the stream."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


DECODERS = ("ffmpeg", "opencv")


def open_source(url: str, *, fps: float = 5.0, width: int | None = None, open_timeout: float = 10.0,
                read_timeout: float = 5.0, realtime: bool = False, decoder: str = "ffmpeg") -> FrameSource:
    """A started source for `url`, its frame size known; FrameSourceError if it cannot start.

    `fps`: frames per second delivered (the rest are dropped); `width`: scale to this width
    keeping the aspect (None: as sent). For files, `realtime=True` plays at the file's own
    speed and loops (the demo); `realtime=False` decodes as fast as it can and ends (tests,
    bench). Live streams are always real time.

    `decoder`: "ffmpeg" (default) runs a process per source: isolated (a decoder that hangs or
    crashes is killed, not the worker), with ffmpeg's own words for a failure, ~30 MB each.
    "opencv" decodes inside the worker with OpenCV's bundled FFmpeg: ~4 MB and about half
    the CPU per camera, but a native crash takes the worker down and failures say less."""
    if fps <= 0:
        raise ValueError("fps must be positive")
    if decoder not in DECODERS:
        raise ValueError(f"decoder is one of {DECODERS}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if decoder == "opencv":
        return _open_opencv(url, parts, fps=fps, width=width, open_timeout=open_timeout,
                            read_timeout=read_timeout, realtime=realtime)
    # ffmpeg's own socket timeout is a backstop that ends a process stuck in a read; ours
    # (below, on the pipe) comes first, so the reason and the moment are ours to tell.
    socket_timeout = _micros(max(open_timeout, read_timeout) + 1)
    if scheme in ("rtsp", "rtsps"):
        return FfmpegSource(url, ["-rtsp_transport", "tcp", "-timeout", socket_timeout],
                            fps=fps, width=width, open_timeout=open_timeout, read_timeout=read_timeout)
    if scheme in ("http", "https"):
        return FfmpegSource(url, ["-rw_timeout", socket_timeout],
                            fps=fps, width=width, open_timeout=open_timeout, read_timeout=read_timeout)
    if scheme == "file" or (scheme == "" and url):
        path = Path(unquote(parts.path) if scheme == "file" else url)
        if not path.is_file():
            raise FrameSourceError("unreachable", f"no such file {str(path)!r}")
        loop = ["-re", "-stream_loop", "-1"] if realtime else []
        return FfmpegSource(str(path), loop, fps=fps, width=width, open_timeout=open_timeout,
                            read_timeout=read_timeout, stream_clock=True)
    raise FrameSourceError("unsupported", f"cannot read {scheme or 'this'!s} URLs: use rtsp://, http(s):// or a file")


def _micros(seconds: float) -> str:
    return str(int(seconds * 1_000_000))


# ffmpeg's words for each failure, first match wins; anything else while opening is a bad stream.
_CLASSIFY = [
    ("unreachable", re.compile(r"Connection refused|No route to host|Network is unreachable|Name or service not known"
                               r"|Temporary failure in name resolution|Server returned [45]\d\d|No such file"
                               r"|Connection reset", re.I)),
    ("timeout", re.compile(r"timed out|Timeout", re.I)),
    ("bad_stream", re.compile(r"Invalid data|could not find codec|Could not find|unspecified size|error while decoding"
                              r"|does not contain any stream|Failed to|moov atom", re.I)),
]
_OUTPUT_SIZE = re.compile(r"Video: rawvideo.*?, (\d{2,5})x(\d{2,5})[ ,\[]")


class FfmpegSource(FrameSource):
    """ffmpeg decodes, drops to `fps`, scales and writes raw BGR frames to a pipe; this reads
    whole frames from it with a timeout. Its stderr is kept (the last lines) for the reason
    of a failure, and gives the output frame size before the first frame."""

    def __init__(self, url: str, input_args: list[str], *, fps: float, width: int | None, open_timeout: float,
                 read_timeout: float, stream_clock: bool = False):
        self.url = url
        self.fps = fps
        self.read_timeout = read_timeout
        # Files are stamped by their position in the stream (start + k / fps): a clip decoded
        # faster than real time still shows the times at which things happen in it.
        self._stream_clock = stream_clock
        self._frames = 0
        self._started = time.time()
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._size_known = threading.Event()
        self._closed = False
        video_filter = f"fps={fps:g}" + (f",scale={int(width)}:-2" if width else "")
        command = [FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
                   # One decoding thread: sub-streams are small, cameras run in parallel
                   # processes anyway, and frame threads would add memory and delay.
                   "-threads", "1", *input_args, "-i", url, "-an", "-sn", "-dn",
                   "-vf", video_filter, "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"]
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, bufsize=0)
        except FileNotFoundError as e:
            raise FrameSourceError("unsupported", f"ffmpeg is not installed ({e})") from None
        try:
            fcntl.fcntl(self._process.stdout.fileno(), _F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass                                   # a smaller pipe only costs more wake-ups
        threading.Thread(target=self._drain_stderr, name=f"ffmpeg-stderr-{self._process.pid}", daemon=True).start()
        if not self._size_known.wait(open_timeout):
            self.close()
            raise FrameSourceError("timeout", f"no stream from {_redact(url)} within {open_timeout:g} s"
                                   + self._tail(" — ffmpeg: "))
        if self.size is None:                      # ffmpeg ended before it knew what it would send
            self._process.wait()
            self.close()
            raise self._failure(opening=True)
        self._frame_bytes = self.size[0] * self.size[1] * 3
        self._started = time.time()

    @property
    def pid(self) -> int:
        """The decoder's process id (a worker counts its memory with its own)."""
        return self._process.pid

    def _drain_stderr(self) -> None:
        """Keep ffmpeg's last words and find the output frame size in its stream report."""
        in_output = False
        stderr = io.BufferedReader(self._process.stderr)   # the pipe is unbuffered (bufsize=0 for stdout)
        for raw in stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self._stderr.append(line)
            if line.startswith("Output #0"):
                in_output = True
            elif in_output and self.size is None and (m := _OUTPUT_SIZE.search(line)):
                self.size = (int(m.group(1)), int(m.group(2)))
                self._size_known.set()
        stderr.close()
        self._size_known.set()                     # ended: wake an opener still waiting

    def read(self) -> tuple[float, np.ndarray]:
        if self._closed:
            raise FrameSourceError("ended", "the source is closed")
        frame = np.empty((self.size[1], self.size[0], 3), np.uint8)
        view = memoryview(frame).cast("B")
        pipe = self._process.stdout
        got = 0
        deadline = time.monotonic() + self.read_timeout
        while got < self._frame_bytes:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pipe], [], [], left)[0]:
                raise FrameSourceError("timeout", f"no frame from {_redact(self.url)} for {self.read_timeout:g} s")
            n = pipe.readinto(view[got:])
            if not n:                              # ffmpeg closed its output: the stream ended or broke
                try:
                    self._process.wait(2)
                except subprocess.TimeoutExpired:
                    pass
                raise self._failure(opening=False)
            got += n
        self._frames += 1
        ts = self._started + (self._frames - 1) / self.fps if self._stream_clock else time.time()
        return ts, frame

    def _failure(self, *, opening: bool) -> FrameSourceError:
        text = "\n".join(self._stderr)
        for reason, pattern in _CLASSIFY:
            if pattern.search(text):
                if reason == "bad_stream" and not opening and self._frames:
                    continue                       # decode errors after frames came: a stream that broke off
                return FrameSourceError(reason, f"{_redact(self.url)}{self._tail(' — ffmpeg: ')}")
        if opening:
            return FrameSourceError("bad_stream", f"no video in {_redact(self.url)}{self._tail(' — ffmpeg: ')}")
        return FrameSourceError("ended", f"{_redact(self.url)} ended after {self._frames} frames"
                                + self._tail(" — ffmpeg: "))

    def _tail(self, prefix: str) -> str:
        """ffmpeg's last lines that say something went wrong (its banner and stream report are noise)."""
        skip = ("Input #", "Output #", "Stream ", "Duration", "Metadata", "Press ", "encoder", "  ")
        lines = [l.strip() for l in self._stderr if l and not l.startswith(skip) and not l.startswith(("frame=", "video:"))]
        password = urlsplit(self.url).password
        text = " | ".join(lines[-3:])
        return prefix + (text.replace(password, "***") if password else text) if lines else ""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._process.stdout.close()               # stderr: closed by its reader at end of file


def _redact(url: str) -> str:
    """The URL without its password (camera URLs often carry one) for logs and statuses."""
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=netloc).geturl()
    return url


class Backoff:
    """Reconnect delays (重连退避): `initial` doubling to `maximum`, with ±`jitter` so that
    cameras dropped together by one network fault do not all come back at the same moment;
    `reset()` after a frame arrives."""

    def __init__(self, initial: float = 1.0, maximum: float = 60.0, factor: float = 2.0, jitter: float = 0.1,
                 rng: random.Random | None = None):
        self.initial, self.maximum, self.factor, self.jitter = initial, maximum, factor, jitter
        self._rng = rng or random.Random()
        self._next = initial
        self.failures = 0

    def next(self) -> float:
        """The delay to wait before the next attempt."""
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        self.failures += 1
        return delay * (1 + self._rng.uniform(-self.jitter, self.jitter))

    def reset(self) -> None:
        self._next = self.initial
        self.failures = 0


# --- in-process decoding -----------------------------------------------------------------------

def _open_opencv(url: str, parts, **options) -> FrameSource:
    scheme = parts.scheme.lower()
    if scheme in ("rtsp", "rtsps", "http", "https"):
        _probe_tcp(url, parts, options["open_timeout"])
        if scheme.startswith("rtsp"):
            # OpenCV's FFmpeg reads its options from this variable; TCP as with the ffmpeg decoder.
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        return OpenCVSource(url, live=True, **options)
    if scheme == "file" or (scheme == "" and url):
        path = Path(unquote(parts.path) if scheme == "file" else url)
        if not path.is_file():
            raise FrameSourceError("unreachable", f"no such file {str(path)!r}")
        return OpenCVSource(str(path), live=False, **options)
    raise FrameSourceError("unsupported", f"cannot read {scheme or 'this'!s} URLs: use rtsp://, http(s):// or a file")


def _probe_tcp(url: str, parts, timeout: float) -> None:
    """OpenCV says only "could not open": a TCP connection first tells an address that does
    not answer from a stream that is not video."""
    port = parts.port or {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}[parts.scheme.lower()]
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except TimeoutError:
        raise FrameSourceError("timeout", f"{_redact(url)} did not answer within {timeout:g} s") from None
    except OSError as e:
        raise FrameSourceError("unreachable", f"{_redact(url)}: {e.strerror or e}") from None


class OpenCVSource(FrameSource):
    """cv2.VideoCapture with its open/read timeouts. Frames beyond `fps` are grabbed (decoded,
    as H.264 needs) but not converted to BGR; files are stamped by stream position."""

    def __init__(self, url: str, *, live: bool, fps: float, width: int | None, open_timeout: float,
                 read_timeout: float, realtime: bool):
        import cv2                                  # here: the ffmpeg decoder does not need OpenCV
        self._cv2 = cv2
        self.url, self.fps, self.read_timeout = url, fps, read_timeout
        self._live, self._realtime = live, realtime and not live
        self._width = width
        self._params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout * 1000),
                        cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout * 1000), cv2.CAP_PROP_N_THREADS, 1]
        started = time.monotonic()
        self._cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, self._params)
        if not self._cap.isOpened():
            self._cap.release()
            timed_out = time.monotonic() - started >= 0.9 * open_timeout
            raise FrameSourceError("timeout" if timed_out else "bad_stream",
                                   f"OpenCV could not open {_redact(url)}" + (" in time" if timed_out else " as video"))
        self._native_fps = self._cap.get(cv2.CAP_PROP_FPS) or 25.0
        self._grabbed = 0                           # frames decoded from this file pass
        self._offset = 0.0                          # stream seconds of the passes before (looping)
        self._next = 0.0                            # stream time (files) / monotonic (live) of the next frame out
        self._frames = 0
        self._closed = False
        self._wall_start, self._mono_start = time.time(), time.monotonic()
        try:
            self._first: tuple[float, np.ndarray] | None = self.read()
        except FrameSourceError as e:
            self.close()
            raise FrameSourceError("bad_stream" if e.reason == "ended" else e.reason, e.message) from None
        self.size = (self._first[1].shape[1], self._first[1].shape[0])

    def _grab(self) -> None:
        started = time.monotonic()
        if self._cap.grab():
            self._grabbed += 1
            return
        if time.monotonic() - started >= 0.9 * self.read_timeout:
            raise FrameSourceError("timeout", f"no frame from {_redact(self.url)} for {self.read_timeout:g} s")
        if self._realtime and self._grabbed:        # the demo: play the file again
            self._offset += self._grabbed / self._native_fps
            self._grabbed = 0
            self._cap.release()
            self._cap = self._cv2.VideoCapture(self.url, self._cv2.CAP_FFMPEG, self._params)
            return self._grab()
        raise FrameSourceError("ended", f"{_redact(self.url)} ended after {self._frames} frames")

    def read(self) -> tuple[float, np.ndarray]:
        if self._closed:
            raise FrameSourceError("ended", "the source is closed")
        if getattr(self, "_first", None) is not None:
            first, self._first = self._first, None
            return first
        while True:                                 # decode until the next frame due, drop the rest
            self._grab()
            if self._live:
                now = time.monotonic()
                if now >= self._next:
                    self._next = max(self._next + 1 / self.fps, now - 0.5 / self.fps)
                    ts = time.time()
                    break
            else:
                at = self._offset + (self._grabbed - 1) / self._native_fps
                if at + 1e-6 >= self._next:
                    ts = self._wall_start + self._next
                    self._next += 1 / self.fps
                    if self._realtime:              # pace to the file's own speed
                        time.sleep(max(0.0, self._mono_start + at - time.monotonic()))
                    break
        ok, frame = self._cap.retrieve()
        if not ok or frame is None:
            raise FrameSourceError("bad_stream", f"a frame from {_redact(self.url)} could not be decoded")
        if self._width and frame.shape[1] != self._width:
            height = round(frame.shape[0] * self._width / frame.shape[1] / 2) * 2
            frame = self._cv2.resize(frame, (self._width, height), interpolation=self._cv2.INTER_AREA)
        self._frames += 1
        return ts, frame

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._cap.release()
