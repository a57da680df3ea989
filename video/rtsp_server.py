"""A test RTSP camera (测试RTSP流): serves an H.264 file looped, as an IP camera's stream, with
Debian's GStreamer RTSP server. Run by the system Python, which has the GObject bindings
(the virtualenv has none), so it imports nothing from the project, numpy or OpenCV:

    /usr/bin/python3 video/rtsp_server.py street.mp4 [--port 8554] [--path /street]

It prints `ready rtsp://127.0.0.1:PORT/PATH` once it serves, and runs until killed.
`video.test_streams.serve_rtsp()` starts it from the tests and the demo.

ffmpeg copies the file's H.264 (no re-encoding) looped at its own speed into an appsrc;
h264parse makes access units of the byte stream and rtph264pay sends them. All clients
share one such pipeline (a camera has one encoder however many watch it)."""
from __future__ import annotations

import argparse
import ctypes
import signal
import subprocess
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PIPELINE = ("( appsrc name=camera is-live=true do-timestamp=true format=time"
            " caps=video/x-h264,stream-format=byte-stream"
            " ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=-1 )")


def _die_with_parent() -> None:
    """The feeder ffmpeg is killed with this server, however the server ends."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)     # PR_SET_PDEATHSIG


class LoopedFile(GstRtspServer.RTSPMediaFactory):
    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.set_launch(PIPELINE)
        self.set_shared(True)
        self.connect("media-configure", self._configure)

    def _configure(self, factory, media) -> None:
        appsrc = media.get_element().get_by_name("camera")
        feeder = subprocess.Popen(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
                                   "-stream_loop", "-1", "-i", self.path, "-an", "-c:v", "copy",
                                   "-bsf:v", "h264_mp4toannexb", "-f", "h264", "pipe:1"],
                                  stdout=subprocess.PIPE, bufsize=0, preexec_fn=_die_with_parent)

        def feed() -> None:
            while True:
                chunk = feeder.stdout.read(65536)
                if not chunk or appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(chunk)) != Gst.FlowReturn.OK:
                    break
            feeder.kill()

        media.connect("unprepared", lambda _media: feeder.kill())
        threading.Thread(target=feed, daemon=True).start()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--port", type=int, default=0, help="0: any free port")
    ap.add_argument("--path", default="/stream")
    args = ap.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(args.path, LoopedFile(args.file))
    if server.attach(None) == 0:
        sys.exit(f"rtsp_server: cannot listen on port {args.port}")
    print(f"ready rtsp://127.0.0.1:{server.get_bound_port()}{args.path}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
