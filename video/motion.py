"""Motion detection (运动检测), the cheap and proven way (as Frigate does it): grayscale,
downscale to ~144 px high, blur, difference against a running-average background, threshold,
dilate, contours, boxes scaled back. Well under a millisecond per 640×360 frame.

`MotionDetector.detect(frame, ts)` says what moves in one frame; `MotionEvents.update(...)`
turns those per-frame answers into events with a start, updates and an end, each carrying
the best snapshot so far (full-resolution JPEG with the boxes drawn)."""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from video.zones import Zone

Box = tuple[int, int, int, int]                  # x, y, w, h in full-resolution pixels
WATCHED = ("motion", "no_dumping", "no_vending")  # zone purposes whose hits are reported
BOX_COLOUR = (0, 0, 255)                          # red boxes on snapshots (BGR)


@dataclass
class Motion:
    """What moved in one frame."""
    ts: float
    boxes: list[Box]                  # full-resolution pixels
    area: int                         # full-resolution pixels covered by the boxes (the "size" of the motion)
    changed: float                    # share of the watched (unmasked) pixels that differ from the background
    zone_ids: tuple[str, ...]         # watched zones the moving pixels fall in
    suppressed: bool = False          # most of the picture changed at once (lights, shake): not motion
    calibrating: bool = False         # the background was (re)seeded with this frame
    gray: np.ndarray | None = field(default=None, repr=False)   # the blurred analysis image (for dwell)
    mask: np.ndarray | None = field(default=None, repr=False)   # moving pixels at analysis size, 0/255

    @property
    def moving(self) -> bool:
        return bool(self.boxes)


class MotionDetector:
    """One camera's motion detector. Tuned for ~5 analysed frames a second.

    threshold: grey levels a pixel must differ from the background by;
    contour_area: the smallest moving blob kept, in analysis pixels (at 144 px high a walker
        far away is ~30);
    frame_alpha: how fast the background learns, per frame (0.02 at 5 fps: a thing that
        stops blends in within ~15 s, so a parked car ends its motion event);
    suppress_fraction: more than this share of the watched pixels changing at once is a
        light switched on or the camera shaking: the background is re-seeded instead."""

    def __init__(self, frame_size: tuple[int, int], zones: Sequence[Zone] = (), *, analysis_height: int = 144,
                 threshold: int = 25, contour_area: int = 20, frame_alpha: float = 0.02,
                 suppress_fraction: float = 0.5, blur: int = 3, dilate_iterations: int = 2):
        if not 48 <= analysis_height <= 360:
            raise ValueError("analysis_height runs 48-360 (100-180 is the useful range)")
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        w, h = self.frame_size
        self.analysis_height = min(analysis_height, h)
        self.analysis_size = (max(1, round(w * self.analysis_height / h)), self.analysis_height)
        aw, ah = self.analysis_size
        self._scale = (w / aw, h / ah)
        whole = w % aw == 0 and h % ah == 0 and w // aw == h // ah
        self._interpolation = cv2.INTER_AREA if whole else cv2.INTER_LINEAR
        self.threshold = threshold
        self.contour_area = contour_area
        self.frame_alpha = frame_alpha
        self.suppress_fraction = suppress_fraction
        self._blur = (blur, blur) if blur > 1 else None
        self._dilate_iterations = dilate_iterations
        self._kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
        self.zones = list(zones)
        # Masks at analysis size: what is watched (ignore zones blacked out), and each watched zone.
        self._keep = np.full((ah, aw), 255, np.uint8)
        for z in self.zones:
            if z.purpose == "ignore":
                cv2.fillPoly(self._keep, [np.array(z.pixels(aw, ah), np.int32)], 0)
        self._has_ignore = any(z.purpose == "ignore" for z in self.zones)
        self._watched_pixels = max(1, cv2.countNonZero(self._keep))
        self._zone_masks: list[tuple[str, np.ndarray, Box]] = []
        for z in self.zones:
            if z.purpose in WATCHED:
                m = np.zeros((ah, aw), np.uint8)
                cv2.fillPoly(m, [np.array(z.pixels(aw, ah), np.int32)], 255)
                cv2.bitwise_and(m, self._keep, dst=m)
                self._zone_masks.append((z.id, m, cv2.boundingRect(m)))
        self._background: np.ndarray | None = None      # float32 running average
        self._background_u8: np.ndarray | None = None   # its uint8 copy, what frames are compared with

    def analysis_image(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Grey, small, blurred: what is compared. Grey first (one channel to resize, not three).
        INTER_AREA averages the pixels it merges, itself a blur against sensor noise, but it
        is fast only for whole-number ratios (0.01 ms for 640→320, 0.27 ms for 640→256);
        otherwise INTER_LINEAR (0.03 ms), and the blur that follows does the averaging."""
        if frame_bgr.shape[1] != self.frame_size[0] or frame_bgr.shape[0] != self.frame_size[1]:
            raise ValueError(f"frame is {frame_bgr.shape[1]}x{frame_bgr.shape[0]}, "
                             f"the detector was made for {self.frame_size[0]}x{self.frame_size[1]}")
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY) if frame_bgr.ndim == 3 else frame_bgr
        small = cv2.resize(gray, self.analysis_size, interpolation=self._interpolation)
        return cv2.GaussianBlur(small, self._blur, 0) if self._blur else small

    def _seed(self, small: np.ndarray) -> None:
        self._background = small.astype(np.float32)
        self._background_u8 = small.copy()

    def detect(self, frame_bgr: np.ndarray, ts: float) -> Motion:
        small = self.analysis_image(frame_bgr)
        if self._background is None:
            self._seed(small)
            return Motion(ts, [], 0, 0.0, (), calibrating=True, gray=small, mask=np.zeros_like(small))
        diff = cv2.absdiff(small, self._background_u8)
        _, mask = cv2.threshold(diff, self.threshold, 255, cv2.THRESH_BINARY)
        if self._has_ignore:
            cv2.bitwise_and(mask, self._keep, dst=mask)
        changed = cv2.countNonZero(mask) / self._watched_pixels
        if changed > self.suppress_fraction:
            # Lights on, camera shaken, exposure jump: start the background again from here.
            self._seed(small)
            return Motion(ts, [], 0, changed, (), suppressed=True, calibrating=True, gray=small,
                          mask=np.zeros_like(small))
        if self._dilate_iterations:
            mask = cv2.dilate(mask, self._kernel, iterations=self._dilate_iterations)
            if self._has_ignore:                        # dilation must not grow into a mask
                cv2.bitwise_and(mask, self._keep, dst=mask)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        small_boxes = [cv2.boundingRect(c) for c in contours if cv2.contourArea(c) >= self.contour_area]
        cv2.accumulateWeighted(small, self._background, self.frame_alpha)
        self._background_u8 = cv2.convertScaleAbs(self._background)
        boxes = [self._to_full(b) for b in small_boxes]
        return Motion(ts, boxes, sum(b[2] * b[3] for b in boxes), changed, self._zones_hit(mask, small_boxes),
                      gray=small, mask=mask)

    def _to_full(self, box: Box) -> Box:
        return to_full(box, self._scale, self.frame_size)

    def _zones_hit(self, mask: np.ndarray, boxes: list[Box]) -> tuple[str, ...]:
        """Zones with moving pixels of a kept box inside them (pixels, not box corners: an
        L-shaped zone is not hit by a box that only spans its empty corner)."""
        hit = []
        for zone_id, zone_mask, (zx, zy, zw, zh) in self._zone_masks:
            for bx, by, bw, bh in boxes:
                x0, y0, x1, y1 = max(bx, zx), max(by, zy), min(bx + bw, zx + zw), min(by + bh, zy + zh)
                if x0 < x1 and y0 < y1 and cv2.countNonZero(
                        cv2.bitwise_and(mask[y0:y1, x0:x1], zone_mask[y0:y1, x0:x1])):
                    hit.append(zone_id)
                    break
        return tuple(hit)


# --- events ---------------------------------------------------------------------------------

@dataclass
class EventChange:
    """A motion event began, changed or ended. The snapshot is the best frame so far (full
    resolution, boxes drawn, JPEG); it is sent again only when it got better."""
    kind: str                           # start | update | end
    event_id: str
    camera_id: str
    zone_ids: tuple[str, ...]           # every watched zone hit so far
    started_at: float                   # wall-clock seconds
    ended_at: float | None              # the last motion, on `end`
    snapshot_jpeg: bytes | None
    snapshot_at: float                  # when the best frame was taken
    boxes: list[Box]                    # the boxes on the best frame
    peak_area: int                      # its moving area, full-resolution pixels
    frames: int                         # frames with motion so far


@dataclass
class _OpenEvent:
    event_id: str
    started_at: float
    last_motion: float
    last_sent: float
    zone_ids: set[str]
    best_frame: np.ndarray
    best_boxes: list[Box]
    best_area: int
    best_at: float
    frames: int = 1
    best_sent: bool = False
    best_jpeg: bytes | None = None       # the best frame encoded, once
    zones_sent: frozenset = frozenset()


class MotionEvents:
    """Per-frame motion → events (运动事件): an event starts after `min_frames_to_start`
    frames in a row with motion, is updated at most every `update_every_s` when its snapshot
    got better or it reached a new zone, and ends `end_after_s` after the last motion (or
    after `max_duration_s`, so a street that never rests gives a series of events, not one
    that never closes). Memory: one frame per camera (the open event's best).

    If `zones` include `motion` zones, only motion in them counts; otherwise any motion
    outside `ignore` zones does."""

    def __init__(self, camera_id: str, *, min_frames_to_start: int = 2, end_after_s: float = 3.0,
                 update_every_s: float = 5.0, max_duration_s: float = 600.0, zones: Sequence[Zone] = (),
                 jpeg_quality: int = 85):
        self.camera_id = camera_id
        self.min_frames_to_start = max(1, min_frames_to_start)
        self.end_after_s = end_after_s
        self.update_every_s = update_every_s
        self.max_duration_s = max_duration_s
        self.jpeg_quality = jpeg_quality
        self._motion_zones = {z.id for z in zones if z.purpose == "motion"}
        self._run: list[float] = []        # times of the frames with motion in a row, before a start
        self._best_pending: tuple[np.ndarray, list[Box], int, float] | None = None
        self._open: _OpenEvent | None = None

    @property
    def open_event_id(self) -> str | None:
        return self._open.event_id if self._open else None

    def _counts(self, motion: Motion) -> bool:
        if motion.suppressed or not motion.boxes:
            return False
        return not self._motion_zones or bool(self._motion_zones.intersection(motion.zone_ids))

    def update(self, motion: Motion, frame_bgr: np.ndarray, ts: float) -> list[EventChange]:
        changes: list[EventChange] = []
        ev = self._open
        if self._counts(motion):
            if ev is None:
                self._run.append(ts)
                if self._best_pending is None or motion.area > self._best_pending[2]:
                    self._best_pending = (frame_bgr.copy(), list(motion.boxes), motion.area, ts)
                if len(self._run) >= self.min_frames_to_start:
                    frame, boxes, area, at = self._best_pending
                    ev = self._open = _OpenEvent(uuid.uuid4().hex, self._run[0], ts, ts, set(motion.zone_ids),
                                                 frame, boxes, area, at, frames=len(self._run))
                    self._run, self._best_pending = [], None
                    changes.append(self._change("start", ev, ts))
                return changes
            ev.frames += 1
            ev.last_motion = ts
            ev.zone_ids.update(motion.zone_ids)
            if motion.area > ev.best_area:
                ev.best_frame, ev.best_boxes, ev.best_area, ev.best_at = \
                    frame_bgr.copy(), list(motion.boxes), motion.area, ts
                ev.best_sent, ev.best_jpeg = False, None
        elif ev is None:
            self._run, self._best_pending = [], None      # the run is broken: one frame of noise starts nothing
            return changes
        if ts - ev.last_motion >= self.end_after_s:
            changes.append(self._change("end", ev, ts, ended_at=ev.last_motion))
            self._open = None
        elif ts - ev.started_at >= self.max_duration_s:
            changes.append(self._change("end", ev, ts, ended_at=ts))
            self._open = None
        elif (ev.zone_ids - ev.zones_sent) or (not ev.best_sent and ts - ev.last_sent >= self.update_every_s):
            changes.append(self._change("update", ev, ts))
        return changes

    def close(self, ts: float) -> list[EventChange]:
        """End the open event now (the camera went offline, the worker stops)."""
        if self._open is None:
            return []
        ev, self._open = self._open, None
        self._run, self._best_pending = [], None
        return [self._change("end", ev, ts, ended_at=min(ts, ev.last_motion))]

    def _change(self, kind: str, ev: _OpenEvent, ts: float, ended_at: float | None = None) -> EventChange:
        jpeg = None
        if not ev.best_sent or kind == "end":         # JPEG only when it is sent: ~2 ms a frame
            if ev.best_jpeg is None:
                ev.best_jpeg = snapshot_jpeg(ev.best_frame, ev.best_boxes, self.jpeg_quality)
            jpeg = ev.best_jpeg
        ev.best_sent = True
        ev.zones_sent = frozenset(ev.zone_ids)
        ev.last_sent = ts
        return EventChange(kind, ev.event_id, self.camera_id, tuple(sorted(ev.zone_ids)), ev.started_at, ended_at,
                           jpeg, ev.best_at, list(ev.best_boxes), ev.best_area, ev.frames)


def to_full(box: Box, scale: tuple[float, float], frame_size: tuple[int, int]) -> Box:
    """A box found on the small analysis picture, on the full-resolution frame (kept inside it)."""
    sx, sy = scale
    x, y, w, h = box
    fw, fh = frame_size
    x0, y0 = int(x * sx), int(y * sy)
    return x0, y0, min(fw - x0, int(np.ceil(w * sx))), min(fh - y0, int(np.ceil(h * sy)))


def draw_boxes(frame_bgr: np.ndarray, boxes: Sequence[Box], colour: tuple[int, int, int] = BOX_COLOUR) -> np.ndarray:
    """A copy of the frame with the boxes drawn (2 px, or 1 px on small frames)."""
    out = frame_bgr.copy()
    thickness = 2 if frame_bgr.shape[1] >= 320 else 1
    for x, y, w, h in boxes:
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), colour, thickness)
    return out


def snapshot_jpeg(frame_bgr: np.ndarray, boxes: Sequence[Box], quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", draw_boxes(frame_bgr, boxes), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("the frame could not be encoded as JPEG")
    return buf.tobytes()
