"""Shared for the video tests: the generated street clip (real H.264, made once per session)
and a way to play a clip through the real frame source, with times relative to its start."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from video.frames import FrameSourceError, open_source
from video.test_streams import StreetTruth, make_street_video


@pytest.fixture(scope="session")
def street(tmp_path_factory) -> tuple[Path, StreetTruth]:
    """60 s of street at 10 fps: walkers, a vehicle, a bag left at ~46 s (DEFAULT_EVENTS)."""
    path = tmp_path_factory.mktemp("streams") / "street.mp4"
    return path, make_street_video(path, seconds=60, fps=10, seed=7)


def play(path: Path | str, fps: float = 5.0, until: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """(seconds since the first frame, frame) through open_source, as fast as it decodes."""
    with open_source(str(path), fps=fps) as src:
        start = None
        while True:
            try:
                ts, frame = src.read()
            except FrameSourceError as e:
                assert e.reason == "ended", e
                return
            start = ts if start is None else start
            if until is not None and ts - start >= until:
                return
            yield ts - start, frame


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    return iw * ih / (aw * ah + bw * bh - iw * ih)
