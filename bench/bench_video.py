"""Camera analysis on CPU (video/): generated 640×360 H.264 street clips, decoded by the
worker's own frame source (an ffmpeg process per camera), analysed at 5 fps.

Prints, each beside a baseline measured in the same run:
- the motion stage alone, ms per 640×360 frame, mean and p99 (wall and CPU)
  (baseline: OpenCV's MOG2 background subtractor on the full frames, with its contours);
- cameras analysed per CPU core at 5 fps, decode included: N cameras at once in one worker
  process, the CPU seconds it and its ffmpeg children spend per analysed frame (decode, motion,
  events, dwell), so 1 / (5 × CPU per frame) cameras fill a core (baseline: the same worker
  with MOG2 on full frames as its motion stage);
- that worker's memory with the N cameras open at once: RSS of the process and its ffmpeg
  children, and PSS (shared library pages counted once, as the machine pays for them);
  and both figures again for the in-process decoder (open_source(decoder="opencv")).

    .venv/bin/python bench/bench_video.py [--cameras 8] [--seconds 40] [--stream-fps 15] [--bitrate 512k]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from video.dwell import DwellDetector                                       # noqa: E402
from video.frames import FrameSourceError, open_source                     # noqa: E402
from video.motion import Motion, MotionDetector, MotionEvents               # noqa: E402
from video.test_streams import DEFAULT_EVENTS, make_street_video           # noqa: E402
from video.zones import parse_zones                                         # noqa: E402

ANALYSIS_FPS = 5.0
SIZE = (640, 360)
ZONES = parse_zones([
    {"id": "road", "purpose": "motion", "points": [[0, 0.5], [1, 0.5], [1, 0.8], [0, 0.8]]},
    {"id": "kerb", "purpose": "no_dumping", "points": [[0, 0.8], [1, 0.8], [1, 1], [0, 1]]},
])


class Mog2Detector:
    """The baseline motion stage: OpenCV's MOG2 on the full frame, its mask cleaned and
    turned into boxes the same way, answering with the same Motion."""

    def __init__(self, frame_size: tuple[int, int]):
        self.subtractor = cv2.createBackgroundSubtractorMOG2(history=500, varThreshold=16, detectShadows=False)
        self.kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
        self.pixels = frame_size[0] * frame_size[1]

    def detect(self, frame: np.ndarray, ts: float) -> Motion:
        mask = self.subtractor.apply(frame)
        changed = cv2.countNonZero(mask) / self.pixels
        mask = cv2.dilate(mask, self.kernel, iterations=2)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes = [cv2.boundingRect(c) for c in contours if cv2.contourArea(c) >= 120]
        return Motion(ts, boxes, sum(w * h for _, _, w, h in boxes), changed, ())


def make_detector(kind: str):
    return MotionDetector(SIZE, ZONES) if kind == "ours" else Mog2Detector(SIZE)


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p))


# --- the motion stage alone ------------------------------------------------------------------

def decoded(path: Path) -> list[tuple[float, np.ndarray]]:
    frames = []
    with open_source(str(path), fps=ANALYSIS_FPS) as src:
        while True:
            try:
                frames.append(src.read())
            except FrameSourceError:
                return frames


def stage_timings(kind: str, frames: list[tuple[float, np.ndarray]], passes: int) -> tuple[list[float], float]:
    """Wall ms per frame, and CPU ms per frame, over `passes` runs through the frames."""
    detector = make_detector(kind)
    for ts, frame in frames[:10]:                                   # warm up (allocations, first frame)
        detector.detect(frame, ts)
    wall, cpu0 = [], time.process_time()
    for p in range(passes):
        for ts, frame in frames:
            t = time.perf_counter()
            detector.detect(frame, ts + p * 1000)
            wall.append((time.perf_counter() - t) * 1000)
    return wall, (time.process_time() - cpu0) * 1000 / len(wall)


# --- a worker with N cameras (run as its own process) -----------------------------------------

def memory_kb(pid: int) -> tuple[int, int]:
    """RSS and PSS of one process, kB (0, 0 once it has gone)."""
    try:
        rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
        pss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/smaps_rollup") if l.startswith("Pss:"))
        return rss, pss
    except (OSError, StopIteration):
        return 0, 0


def worker(kind: str, decoder: str, clips: list[str]) -> dict:
    """Analyse every clip as a camera, all at once, each in a thread as `citygrid video` does:
    frame source → motion → motion events → dwell. Returns CPU and memory figures.
    OpenCV runs one thread per call: the cameras are the parallelism, and its pool's
    threads would spin (the motion stage costs 0.4 ms CPU for 0.2 ms wall with them)."""
    cv2.setNumThreads(1)
    sources, frames, events = [], [0] * len(clips), [0] * len(clips)
    opened = threading.Barrier(len(clips) + 1)
    done = threading.Event()
    samples: list[tuple[int, int, int, int]] = []                   # own RSS, own PSS, ffmpeg RSS, ffmpeg PSS

    def camera(i: int, clip: str) -> None:
        src = open_source(clip, fps=ANALYSIS_FPS, decoder=decoder)
        sources.append(src)
        opened.wait()
        detector = make_detector(kind)
        tracker = MotionEvents(f"cam-{i}", zones=ZONES)
        dwell = DwellDetector(f"cam-{i}", SIZE, ZONES)
        with src:
            while True:
                try:
                    ts, frame = src.read()
                except FrameSourceError:
                    return
                motion = detector.detect(frame, ts)
                events[i] += len(tracker.update(motion, frame, ts)) + len(dwell.update(frame, ts, motion))
                frames[i] += 1

    def sample_memory() -> None:
        opened.wait()
        while not done.wait(0.2):
            own = memory_kb(os.getpid())
            children = [memory_kb(s.pid) for s in sources if hasattr(s, "pid")]
            if all(rss for rss, _ in children) and len(sources) == len(clips):   # only while all N are open
                samples.append((*own, sum(c[0] for c in children), sum(c[1] for c in children)))

    self0, children0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    sampler = threading.Thread(target=sample_memory)
    sampler.start()
    with ThreadPoolExecutor(len(clips)) as pool:
        list(pool.map(camera, range(len(clips)), clips))
    done.set()
    sampler.join()
    wall = time.monotonic() - start
    # ffmpeg children are waited for when their source closes, so their CPU is in RUSAGE_CHILDREN now.
    self1, children1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    own_cpu = (self1.ru_utime - self0.ru_utime) + (self1.ru_stime - self0.ru_stime)
    ffmpeg_cpu = (children1.ru_utime - children0.ru_utime) + (children1.ru_stime - children0.ru_stime)
    peak = max(samples, key=lambda s: s[0] + s[2], default=(0, 0, 0, 0))   # the sample with the most RSS in all
    return {"frames": sum(frames), "events": sum(events), "own_cpu": own_cpu, "ffmpeg_cpu": ffmpeg_cpu, "wall": wall,
            "own_rss": peak[0] / 1024, "own_pss": peak[1] / 1024, "ffmpeg_rss": peak[2] / 1024,
            "ffmpeg_pss": peak[3] / 1024, "memory_samples": len(samples)}


def run_worker(kind: str, decoder: str, clips: list[Path]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, decoder, *map(str, clips)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- main ------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=40.0, help="length of each camera's clip")
    ap.add_argument("--stream-fps", type=float, default=15.0, help="frame rate of the H.264 sub-streams")
    ap.add_argument("--bitrate", default="512k", help="their constant bit rate, as cameras send")
    ap.add_argument("--passes", type=int, default=3, help="passes over the frames for the motion stage alone")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"machine: {os.cpu_count()} cores ({cores} usable by this process); OpenCV {cv2.__version__}, "
          f"{cv2.getNumThreads()} OpenCV threads")
    with tempfile.TemporaryDirectory(prefix="citygrid-bench-video-") as tmp:
        t = time.monotonic()
        clips = [Path(tmp) / f"street-{i}.mp4" for i in range(args.cameras)]
        with ThreadPoolExecutor(cores) as pool:                      # a different street per camera
            list(pool.map(lambda ic: make_street_video(ic[1], seconds=args.seconds, fps=args.stream_fps, seed=100 + ic[0],
                                                       events=DEFAULT_EVENTS, bitrate=args.bitrate), enumerate(clips)))
        print(f"{args.cameras} clips of {args.seconds:g} s, {SIZE[0]}×{SIZE[1]} H.264 at {args.stream_fps:g} fps and"
              f" {args.bitrate}b/s, "
              f"analysed at {ANALYSIS_FPS:g} fps (made in {time.monotonic() - t:.1f} s)")

        frames = decoded(clips[0])
        ours, ours_cpu = stage_timings("ours", frames, args.passes)
        base, base_cpu = stage_timings("mog2", frames, 1)
        print(f"motion stage alone: {statistics.mean(ours):.2f} ms/frame mean, p99 {pct(ours, 99):.2f} ms"
              f" (CPU {ours_cpu:.2f} ms)  | baseline MOG2 on full frames: {statistics.mean(base):.2f} ms mean,"
              f" p99 {pct(base, 99):.2f} ms (CPU {base_cpu:.2f} ms)  | target ≤ 1 ms")
        del frames

        results = {"ours": run_worker("ours", "ffmpeg", clips), "mog2": run_worker("mog2", "ffmpeg", clips),
                   "in-process": run_worker("ours", "opencv", clips)}
        per_core = {}
        for kind, r in results.items():
            cpu_per_frame = (r["own_cpu"] + r["ffmpeg_cpu"]) / r["frames"]
            per_core[kind] = 1 / (ANALYSIS_FPS * cpu_per_frame)
            r["cpu_ms"] = cpu_per_frame * 1000
            r["ffmpeg_ms"] = r["ffmpeg_cpu"] / r["frames"] * 1000
        o, b = results["ours"], results["mog2"]
        print(f"cameras per CPU core at {ANALYSIS_FPS:g} fps, decode included: {per_core['ours']:.1f}"
              f" ({o['cpu_ms']:.1f} ms CPU per analysed frame, of which ffmpeg decode {o['ffmpeg_ms']:.1f} ms;"
              f" {o['frames']} frames from {args.cameras} cameras at once in {o['wall']:.1f} s)"
              f"  | baseline MOG2: {per_core['mog2']:.1f} ({b['cpu_ms']:.1f} ms per frame)  | target ≥ 8")
        n = args.cameras
        for r in results.values():
            r["rss"], r["pss"] = r["own_rss"] + r["ffmpeg_rss"], r["own_pss"] + r["ffmpeg_pss"]
        print(f"worker memory with {n} cameras open at once: RSS {o['rss']:.0f} MB = worker {o['own_rss']:.0f}"
              f" + {n} ffmpeg × {o['ffmpeg_rss'] / n:.0f}; PSS (shared library pages counted once) {o['pss']:.0f} MB"
              f" = worker {o['own_pss']:.0f} + {n} × {o['ffmpeg_pss'] / n:.0f}"
              f"  | baseline MOG2: RSS {b['rss']:.0f} MB, PSS {b['pss']:.0f} MB  | target ≤ 200 MB")
        i = results["in-process"]
        print(f"  the same worker decoding in-process (decoder=\"opencv\", no ffmpeg children): {per_core['in-process']:.1f}"
              f" cameras per core ({i['cpu_ms']:.1f} ms CPU per frame), RSS {i['rss']:.0f} MB, PSS {i['pss']:.0f} MB")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], sys.argv[3], sys.argv[4:])))
    else:
        main()
