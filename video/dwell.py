"""Left objects and stalls (暴露垃圾, 占道经营): something that appears inside a `no_dumping` or
`no_vending` zone and stays still there longer than the dwell time becomes one `DwellEvent`
with a before and an after picture.

The model, sampled once a second (things that stay for minutes need no more):

- A slow background (长期背景): a running average, learning only where nothing moves and no
  candidate object lies. It follows the light of the day, but an object that stays is never
  learnt into it while it is tracked, so the object keeps differing for as long as it is
  there, and when it goes the place matches the background again at once. (A median of
  samples would learn the object too, after half its window, and then show a ghost where it
  was when it is taken away.) A full-resolution colour copy of it is the "before" picture.
- Moving: what differs from the previous sample (a second ago).
- Candidates: still regions differing from the background, inside a watched zone, bigger
  than `min_area`. A candidate present (most samples) for `dwell_s` and still at that
  moment is confirmed, once; it is forgotten `forget_after_s` after it is no longer there.
  A passer-by who walks in front of it only delays the confirmation by a sample.
- Ghosts: where something that was in the background at start-up leaves, the place differs
  but shows no edges of its own (the edges are in the background); such a region is
  learnt at once instead of becoming a candidate.
- Light: when the light changes at once (the motion detector suppresses the frame, or most
  of the picture differs), the background starts again from the picture, and under tracked
  objects it is shifted by the change seen everywhere else.
- Dismissals (operator: "not a problem"): kept as normalised boxes; a candidate at about the
  same place never alarms. `dismissed()` / the `dismissed` argument persist them.

All times are the frame timestamps given, never the clock."""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from video.motion import Box, Motion, snapshot_jpeg, to_full
from video.zones import Zone

DWELL_PURPOSES = ("no_dumping", "no_vending")


@dataclass
class DwellEvent:
    """A left object or a stall, confirmed."""
    event_id: str
    camera_id: str
    zone_id: str
    purpose: str                      # no_dumping | no_vending
    event_class: str | None           # the zone's (e.g. 0102 暴露垃圾, 0502 占道经营)
    box: Box                          # full-resolution pixels
    first_seen: float                 # when it was first seen still there
    confirmed_at: float
    before_jpeg: bytes = field(repr=False)   # the background, box drawn
    after_jpeg: bytes = field(repr=False)    # the current frame, box drawn


@dataclass
class _Candidate:
    box: Box                          # analysis pixels
    fill: float                       # share of its box that differed when first seen
    zone: Zone
    first_seen: float
    last_seen: float
    samples: int = 1
    present: int = 1
    dismissed: bool = False
    event_id: str | None = None       # set once confirmed


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def _overlap_of_smaller(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    smaller = min(aw * ah, bw * bh)
    return iw * ih / smaller if smaller else 0.0


class DwellDetector:
    """One camera's left-object / stall detector. `update(frame, ts, motion)` for every
    analysed frame (it works on one a second); returns the newly confirmed events."""

    def __init__(self, camera_id: str, frame_size: tuple[int, int], zones: Sequence[Zone], *,
                 dwell_s: float = 120.0, analysis_height: int = 144, threshold: int = 30, move_threshold: int = 20,
                 min_area: int = 60, sample_every_s: float = 1.0, background_alpha: float = 0.03,
                 forget_after_s: float = 10.0, min_presence: float = 0.6, dismissed: Iterable[dict] = (),
                 dismiss_match: float = 0.4, dismiss_ttl_s: float = 7 * 86400.0, max_dismissed: int = 64,
                 max_candidates: int = 32, jpeg_quality: int = 85):
        self.camera_id = camera_id
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        w, h = self.frame_size
        ah = min(analysis_height, h)
        self.analysis_size = (max(1, round(w * ah / h)), ah)
        aw = self.analysis_size[0]
        self._scale = (w / aw, h / ah)
        self.dwell_s = dwell_s
        self.threshold, self.move_threshold, self.min_area = threshold, move_threshold, min_area
        self.sample_every_s = sample_every_s
        self.background_alpha = background_alpha
        self.forget_after_s, self.min_presence = forget_after_s, min_presence
        self.dismiss_match, self.dismiss_ttl_s, self.max_dismissed = dismiss_match, dismiss_ttl_s, max_dismissed
        self.max_candidates = max_candidates
        self.jpeg_quality = jpeg_quality
        self.zones = [z for z in zones if z.purpose in DWELL_PURPOSES]
        self._zone_masks: list[tuple[Zone, np.ndarray]] = []
        self._watch = np.zeros((ah, aw), np.uint8)
        ignore = np.zeros((ah, aw), np.uint8)
        for z in zones:
            if z.purpose == "ignore":
                cv2.fillPoly(ignore, [np.array(z.pixels(aw, ah), np.int32)], 255)
        for z in self.zones:
            m = np.zeros((ah, aw), np.uint8)
            cv2.fillPoly(m, [np.array(z.pixels(aw, ah), np.int32)], 255)
            m[ignore > 0] = 0
            self._zone_masks.append((z, m))
            cv2.bitwise_or(self._watch, m, dst=self._watch)
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._dismissed: list[dict] = []
        self._dismissed_lock = threading.Lock()           # dismiss() comes from the worker's other thread
        for d in dismissed:
            self._add_dismissed(d["box"], float(d["at"]))
        self._background: np.ndarray | None = None      # analysis size, float32
        self._background_colour: np.ndarray | None = None  # full size, float32 BGR (the "before" picture)
        self._previous: np.ndarray | None = None       # the last sample, for what moves
        self._next_sample = -np.inf
        self._reseed = False
        self._candidates: list[_Candidate] = []

    # --- dismissals ---------------------------------------------------------------------------

    def dismiss(self, box: Box, ts: float | None = None) -> None:
        """An operator said the object in `box` (full-resolution pixels, as in its event) is
        not a problem: it, and anything at about the same place later, does not alarm."""
        w, h = self.frame_size
        normalised = (box[0] / w, box[1] / h, box[2] / w, box[3] / h)
        self._add_dismissed(normalised, ts if ts is not None else time.time())
        small = self._to_small(box)
        for c in self._candidates:
            if _iou(c.box, small) >= self.dismiss_match:
                c.dismissed = True

    def _add_dismissed(self, normalised: Sequence[float], at: float) -> None:
        with self._dismissed_lock:
            self._dismissed.append({"box": [round(float(v), 5) for v in normalised], "at": at})
            del self._dismissed[:-self.max_dismissed]   # a small list: the oldest go first

    def dismissed(self) -> list[dict]:
        """The dismissals as JSON-ready data: [{"box": [x, y, w, h] as shares of the picture, "at": ts}]."""
        with self._dismissed_lock:
            return [dict(d, box=list(d["box"])) for d in self._dismissed]

    def _is_dismissed(self, small_box: Box, ts: float) -> bool:
        aw, ah = self.analysis_size
        x, y, w, h = small_box
        normalised = (x / aw, y / ah, w / aw, h / ah)
        with self._dismissed_lock:
            self._dismissed = [d for d in self._dismissed if ts - d["at"] < self.dismiss_ttl_s]
            return any(_iou(normalised, d["box"]) >= self.dismiss_match for d in self._dismissed)

    # --- analysis -----------------------------------------------------------------------------

    def objects(self) -> list[dict]:
        """What is tracked now (for status pages and tests)."""
        return [{"box": self._to_full(c.box), "zone_id": c.zone.id, "first_seen": c.first_seen,
                 "confirmed": c.event_id is not None, "dismissed": c.dismissed} for c in self._candidates]

    def update(self, frame_bgr: np.ndarray, ts: float, motion: Motion | None = None) -> list[DwellEvent]:
        if motion is not None and motion.suppressed:
            self._reseed = True                   # the light changed: learn the new picture at the next sample
        if not self._zone_masks or ts < self._next_sample:
            return []
        self._next_sample = ts + self.sample_every_s * 0.95   # a frame a hair early still samples
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        small = cv2.GaussianBlur(cv2.resize(gray, self.analysis_size, interpolation=cv2.INTER_AREA), (3, 3), 0)
        if self._background is None:
            self._seed(small, frame_bgr)
            return []
        moving = cv2.dilate(cv2.threshold(cv2.absdiff(small, self._previous), self.move_threshold, 255,
                                          cv2.THRESH_BINARY)[1], self._kernel, iterations=2)
        self._previous = small
        background_u8 = cv2.convertScaleAbs(self._background)
        differs = cv2.threshold(cv2.absdiff(small, background_u8), self.threshold, 255, cv2.THRESH_BINARY)[1]
        if self._reseed or cv2.countNonZero(differs) > 0.5 * differs.size:
            self._reseed = False
            self._seed(small, frame_bgr, keep=self._candidate_mask())
            return []
        differs = cv2.morphologyEx(cv2.bitwise_and(differs, self._watch), cv2.MORPH_OPEN, self._kernel)
        events = self._follow(differs, moving, ts, frame_bgr)
        self._find_new(differs, moving, small, background_u8, ts)
        self._learn(small, frame_bgr, moving)
        return events

    def _seed(self, small: np.ndarray, frame_bgr: np.ndarray, keep: np.ndarray | None = None) -> None:
        """(Re)start the background from this picture, except under `keep` (tracked objects)."""
        if keep is None or self._background is None:
            self._background = small.astype(np.float32)
            self._background_colour = frame_bgr.astype(np.float32)
        else:
            # Under tracked objects the old background stays, moved by the change of light
            # seen everywhere else, so an object taken away later matches it again.
            free, kept = keep == 0, keep > 0
            shift = float(np.median(small[free].astype(np.float32) - self._background[free]))
            self._background[free] = small[free]
            self._background[kept] = np.clip(self._background[kept] + shift, 0, 255)
            free_full = cv2.resize(keep, self.frame_size, interpolation=cv2.INTER_NEAREST) == 0
            shift_bgr = np.median(frame_bgr[free_full].astype(np.float32) - self._background_colour[free_full], axis=0)
            self._background_colour[free_full] = frame_bgr[free_full]
            self._background_colour[~free_full] = np.clip(self._background_colour[~free_full] + shift_bgr, 0, 255)
        self._previous = small

    def _learn(self, small: np.ndarray, frame_bgr: np.ndarray, moving: np.ndarray) -> None:
        """The slow background learns where nothing moves and no candidate lies."""
        learn = cv2.bitwise_not(cv2.bitwise_or(moving, self._candidate_mask()))
        cv2.accumulateWeighted(small, self._background, self.background_alpha, learn)
        learn_full = cv2.resize(learn, self.frame_size, interpolation=cv2.INTER_NEAREST)
        cv2.accumulateWeighted(frame_bgr, self._background_colour, self.background_alpha, learn_full)

    def _candidate_mask(self) -> np.ndarray:
        mask = np.zeros(self._watch.shape, np.uint8)
        for c in self._candidates:
            x, y, w, h = c.box
            mask[max(0, y - 1):y + h + 1, max(0, x - 1):x + w + 1] = 255
        return mask

    def _follow(self, differs: np.ndarray, moving: np.ndarray, ts: float, frame_bgr: np.ndarray) -> list[DwellEvent]:
        """Tracked candidates: still there? still? time to confirm? gone?"""
        events, kept = [], []
        for c in self._candidates:
            x, y, w, h = c.box
            present = cv2.countNonZero(differs[y:y + h, x:x + w]) >= 0.5 * c.fill * w * h
            still = cv2.countNonZero(moving[y:y + h, x:x + w]) <= 0.05 * w * h
            c.samples += 1
            if present:
                c.present += 1
                c.last_seen = ts
            elif ts - c.last_seen >= self.forget_after_s:
                continue                                  # it went away: forget it
            if (present and still and c.event_id is None and not c.dismissed
                    and ts - c.first_seen >= self.dwell_s and c.present >= self.min_presence * c.samples):
                if self._is_dismissed(c.box, ts):
                    c.dismissed = True
                else:
                    c.event_id = uuid.uuid4().hex
                    events.append(self._event(c, ts, frame_bgr))
            kept.append(c)
        self._candidates = kept
        return events

    def _find_new(self, differs: np.ndarray, moving: np.ndarray, small: np.ndarray, background_u8: np.ndarray,
                  ts: float) -> None:
        """Still regions that differ from the background: refine the box of the candidate
        they belong to, or start a new candidate."""
        still = cv2.bitwise_and(differs, cv2.bitwise_not(moving))
        contours, _ = cv2.findContours(still, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for contour in contours:
            area = cv2.contourArea(contour)
            if area < self.min_area:
                continue
            box = cv2.boundingRect(contour)
            owner = next((c for c in self._candidates if _overlap_of_smaller(c.box, box) >= 0.5), None)
            if owner is not None:
                if owner.event_id is None:               # settle the box while it is unconfirmed
                    x, y, w, h = owner.box = box
                    owner.fill = cv2.countNonZero(differs[y:y + h, x:x + w]) / (w * h)
                continue
            blob = np.zeros_like(still)
            cv2.drawContours(blob, [contour], -1, 255, -1)
            if self._is_ghost(blob, box, small, background_u8):
                x, y, w, h = box                       # the background was wrong here: learn the place now
                self._background[y:y + h, x:x + w][blob[y:y + h, x:x + w] > 0] = small[y:y + h, x:x + w][
                    blob[y:y + h, x:x + w] > 0]
                continue
            zone = max(self._zone_masks, key=lambda zm: cv2.countNonZero(cv2.bitwise_and(zm[1], blob)))[0]
            x, y, w, h = box
            fill = cv2.countNonZero(differs[y:y + h, x:x + w]) / (w * h)
            if len(self._candidates) >= self.max_candidates:
                self._candidates.remove(min(self._candidates, key=lambda c: (c.event_id is not None, c.last_seen)))
            self._candidates.append(_Candidate(box, fill, zone, ts, ts, dismissed=self._is_dismissed(box, ts)))

    def _is_ghost(self, blob: np.ndarray, box: Box, small: np.ndarray, background_u8: np.ndarray) -> bool:
        """An object brings its own outline; a ghost (where a background thing left) has the
        outline in the background, not in the picture."""
        x, y, w, h = box
        pad = 2
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(small.shape[1], x + w + pad), min(small.shape[0], y + h + pad)
        rim = cv2.morphologyEx(blob[y0:y1, x0:x1], cv2.MORPH_GRADIENT, self._kernel) > 0
        if not rim.any():
            return False

        def edges(img: np.ndarray) -> float:
            roi = img[y0:y1, x0:x1]
            gx = cv2.Sobel(roi, cv2.CV_32F, 1, 0)
            gy = cv2.Sobel(roi, cv2.CV_32F, 0, 1)
            return float(cv2.magnitude(gx, gy)[rim].mean())

        return edges(background_u8) > 1.5 * edges(small)

    # --- output ------------------------------------------------------------------------------

    def _to_full(self, box: Box) -> Box:
        return to_full(box, self._scale, self.frame_size)

    def _to_small(self, box: Box) -> Box:
        sx, sy = self._scale
        x, y, w, h = box
        return int(x / sx), int(y / sy), max(1, round(w / sx)), max(1, round(h / sy))

    def _event(self, c: _Candidate, ts: float, frame_bgr: np.ndarray) -> DwellEvent:
        box = self._to_full(c.box)
        before = cv2.convertScaleAbs(self._background_colour)
        return DwellEvent(c.event_id, self.camera_id, c.zone.id, c.zone.purpose, c.zone.event_class, box,
                          c.first_seen, ts, snapshot_jpeg(before, [box], self.jpeg_quality),
                          snapshot_jpeg(frame_bgr, [box], self.jpeg_quality))
