"""Left objects and stalls: the bag left on the generated street becomes exactly one event of
its zone's class after the dwell time and not before; passers-by, things outside the zones,
dismissed objects and places where something was taken away do not alarm. Time is the
frames' own (a fake clock: dwell times of seconds)."""
from __future__ import annotations

import json

import cv2
import numpy as np

from tests.video.conftest import iou, play
from video.dwell import DwellDetector, DwellEvent
from video.motion import MotionDetector
from video.test_streams import StreetScene
from video.zones import parse_zones

W, H = 640, 360
KERB = {"id": "kerb", "purpose": "no_dumping", "points": [[0, 0.8], [1, 0.8], [1, 1], [0, 1]]}
FAR = {"id": "far", "purpose": "no_dumping", "points": [[0, 0.38], [1, 0.38], [1, 0.5], [0, 0.5]]}
DWELL_S = 8.0


def run(frames, zones, **options) -> tuple[list[tuple[float, DwellEvent]], DwellDetector]:
    zones = parse_zones(zones)
    motion = MotionDetector((W, H), zones)
    dwell = DwellDetector("cam-1", (W, H), zones, **{"dwell_s": DWELL_S, **options})
    events = []
    for t, frame in frames:
        events += [(t, e) for e in dwell.update(frame, t, motion.detect(frame, t))]
    return events, dwell


def decode(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def test_a_left_bag_is_one_event_of_the_zones_class_after_the_dwell_time(street):
    path, truth = street
    events, dwell = run(play(path), [KERB])
    # Walkers cross the kerb zone three times (one stops to put the bag down, one passes in
    # front of it): one event only, the bag's.
    assert len(events) == 1
    t, event = events[0]
    assert (event.zone_id, event.purpose, event.event_class) == ("kerb", "no_dumping", "0102")   # 暴露垃圾
    assert iou(event.box, truth.left_object) > 0.6
    assert truth.left_at <= event.first_seen <= truth.left_at + 2.5
    assert truth.left_at + DWELL_S <= event.confirmed_at == t <= truth.left_at + DWELL_S + 4
    # Before: the background without the bag; after: the frame with it; both full size, boxed.
    before, after = decode(event.before_jpeg), decode(event.after_jpeg)
    assert before.shape == after.shape == (H, W, 3)
    x, y, w, h = truth.left_object
    inside = np.abs(before[y:y + h, x:x + w].astype(int) - after[y:y + h, x:x + w]).mean()
    outside = np.abs(before[:200].astype(int) - after[:200]).mean()          # the buildings, unchanged
    assert inside > 25 and outside < 6
    bx, by, bw, bh = event.box
    assert after[by, bx + bw // 2, 2] > 180 and after[by, bx + bw // 2, 1] < 90     # the box is drawn
    assert [o["confirmed"] for o in dwell.objects()] == [True]                      # still tracked, once


def test_nothing_alarms_before_the_bag_is_left(street):
    path, truth = street
    events, dwell = run(play(path, until=truth.left_at + DWELL_S - 0.5), [KERB])
    assert events == []


def test_a_stall_zone_gives_its_own_class(street):
    path, _ = street
    stall = {**KERB, "id": "market", "purpose": "no_vending"}
    events, _ = run(play(path), [stall])
    assert [(e.zone_id, e.event_class) for _, e in events] == [("market", "0502")]   # 占道经营


def test_an_object_outside_the_no_dumping_zones_does_not_alarm(street):
    path, _ = street
    events, dwell = run(play(path), [FAR])
    assert events == [] and dwell.objects() == []


def test_a_dismissed_object_does_not_alarm_again(street):
    path, truth = street
    (_, event), = run(play(path), [KERB])[0]
    first = DwellDetector("cam-1", (W, H), parse_zones([KERB]), dwell_s=DWELL_S)
    first.dismiss(event.box, ts=1000.0)
    saved = json.loads(json.dumps(first.dismissed()))              # what the worker persists
    assert saved == [{"box": [round(v, 5) for v in (event.box[0] / W, event.box[1] / H, event.box[2] / W,
                                                      event.box[3] / H)], "at": 1000.0}]
    # A restarted worker with the dismissal restored: the same bag at the same place is quiet…
    events, dwell = run(play(path), [KERB], dismissed=saved)
    assert events == [] and [o["dismissed"] for o in dwell.objects()] == [True]
    # …while a dismissal elsewhere on the pavement changes nothing.
    elsewhere = [{"box": [0.05, 0.82, 0.06, 0.09], "at": 1000.0}]
    events, _ = run(play(path), [KERB], dismissed=elsewhere)
    assert len(events) == 1


def test_dismissing_the_tracked_object_keeps_it_quiet():
    scene_events = [{"kind": "object", "at": 1.0, "x": 0.3}]
    zones = parse_zones([KERB])
    scene = StreetScene(events=scene_events, seconds=30, fps=5)
    dwell = DwellDetector("cam-1", (W, H), zones, dwell_s=3)
    events = []
    for k in range(150):
        t = k / 5
        new = dwell.update(scene.frame(t, k), t)
        events += new
        for e in new:
            dwell.dismiss(e.box, ts=t)
    assert len(events) == 1 and len(dwell.dismissed()) == 1


def scene_run(scene_events, seconds: float, zones=(KERB,), **options):
    scene = StreetScene(events=scene_events, seconds=seconds, fps=5)
    frames = ((k / 5, scene.frame(k / 5, k)) for k in range(int(seconds * 5)))
    return run(frames, list(zones), **options)


def test_an_object_that_goes_away_is_forgotten_and_a_new_one_there_alarms_again():
    bag = {"kind": "object", "x": 0.3}
    events, dwell = scene_run([{**bag, "at": 2.0, "until": 12.0}, {**bag, "at": 30.0}], 40, dwell_s=4,
                              forget_after_s=5)
    times = [t for t, _ in events]
    assert len(times) == 2
    assert 6.0 <= times[0] <= 8.0 and 34.0 <= times[1] <= 36.0
    assert len(dwell.objects()) == 1


def test_where_something_was_taken_away_is_no_left_object():
    # A bag is there when the camera starts (so in its first background) and is taken away:
    # the empty pavement differs from that background, but it is a ghost, not an object.
    taken = [{"kind": "object", "x": 0.3, "at": 0.0, "until": 3.0}]
    events, dwell = scene_run(taken, 20, dwell_s=4)
    assert events == [] and dwell.objects() == []
    # The same picture sequence reversed in meaning: a bag that arrives does alarm.
    arrives = [{"kind": "object", "x": 0.3, "at": 3.0}]
    events, _ = scene_run(arrives, 20, dwell_s=4)
    assert len(events) == 1


def test_a_change_of_light_does_not_make_the_whole_zone_an_object():
    events, dwell = scene_run([{"kind": "lights", "at": 5.0, "delta": 60}], 20, dwell_s=4)
    assert events == [] and dwell.objects() == []
    # …and the detector sees again in the new light: a bag put down after it alarms.
    bag = {"kind": "object", "x": 0.3, "at": 10.0}
    events, _ = scene_run([{"kind": "lights", "at": 5.0, "delta": 60}, bag], 25, dwell_s=4)
    assert len(events) == 1 and 14.0 <= events[0][0] <= 16.0
    assert iou(events[0][1].box, StreetScene(events=[bag])._bag_box(bag)) > 0.6


def test_a_bag_taken_away_after_the_light_changed_is_forgotten():
    # The light changes while a bag is tracked; the bag is then taken away before its dwell
    # time: the place must match the (re-lit) background again, not alarm as a bag.
    scene_events = [{"kind": "object", "x": 0.3, "at": 2.0, "until": 14.0}, {"kind": "lights", "at": 8.0, "delta": 50}]
    events, dwell = scene_run(scene_events, 40, dwell_s=20, forget_after_s=5)
    assert events == [] and dwell.objects() == []
