"""Zones on a camera's image (监控区域): polygons in image coordinates normalised to 0…1
(x right, y down), so they survive a change of stream resolution, each with a purpose:

- `motion`      watch for motion (an event of `event_class` if given, else a plain motion event)
- `no_dumping`  something left and still for longer than the dwell time → 暴露垃圾 by default
- `no_vending`  a stall set up and still for longer than the dwell time → 占道经营 by default
- `ignore`      a mask: trees in the wind, a road the camera only sees in passing

A zone given as JSON: {"id": "gate", "purpose": "no_dumping", "points": [[x, y], …],
"event_class": "0102"}; `parse_zones` refuses anything else with a message naming the zone
and the problem."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shapely.geometry import Polygon
from shapely.validation import explain_validity

from gis.errors import Invalid

PURPOSES = ("motion", "no_dumping", "no_vending", "ignore")
DEFAULT_EVENT_CLASS = {"no_dumping": "0102", "no_vending": "0502"}   # 暴露垃圾, 占道经营 (event catalog codes)
MAX_ZONES = 32
MAX_POINTS = 64


@dataclass(frozen=True)
class Zone:
    id: str
    purpose: str
    points: tuple[tuple[float, float], ...]    # normalised image coordinates, 0…1
    event_class: str | None = None

    def polygon(self) -> Polygon:
        return Polygon(self.points)

    def pixels(self, width: int, height: int) -> list[tuple[int, int]]:
        """The polygon on an image of this size (for cv2.fillPoly)."""
        return [(round(x * (width - 1)), round(y * (height - 1))) for x, y in self.points]

    def as_json(self) -> dict:
        out: dict[str, Any] = {"id": self.id, "purpose": self.purpose, "points": [list(p) for p in self.points]}
        if self.event_class:
            out["event_class"] = self.event_class
        return out


def parse_zones(raw: Any) -> list[Zone]:
    """A list of zones from JSON, each checked; Invalid names the first zone that is wrong."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise Invalid("zones are a JSON list of {id, purpose, points, event_class?}")
    if len(raw) > MAX_ZONES:
        raise Invalid(f"{len(raw)} zones; a camera has at most {MAX_ZONES}")
    zones = [parse_zone(item, i) for i, item in enumerate(raw, 1)]
    ids = [z.id for z in zones]
    if len(set(ids)) != len(ids):
        raise Invalid(f"zone ids must differ; {sorted({i for i in ids if ids.count(i) > 1})} repeat")
    return zones


def parse_zone(item: Any, number: int = 1) -> Zone:
    where = f"zone {number}"
    if not isinstance(item, dict):
        raise Invalid(f"{where}: a zone is an object {{id, purpose, points, event_class?}}")
    unknown = set(item) - {"id", "purpose", "points", "event_class"}
    if unknown:
        raise Invalid(f"{where}: unknown keys {sorted(unknown)}")
    zone_id = item.get("id")
    if not isinstance(zone_id, str) or not 1 <= len(zone_id) <= 40:
        raise Invalid(f"{where}: id is text of 1-40 characters")
    where = f"zone {zone_id!r}"
    purpose = item.get("purpose")
    if purpose not in PURPOSES:
        raise Invalid(f"{where}: purpose must be one of {', '.join(PURPOSES)}, not {purpose!r}")
    points = item.get("points")
    if not isinstance(points, list) or not 3 <= len(points) <= MAX_POINTS:
        raise Invalid(f"{where}: points is a list of 3-{MAX_POINTS} [x, y] pairs")
    pairs = []
    for p in points:
        if (not isinstance(p, (list, tuple)) or len(p) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in p)):
            raise Invalid(f"{where}: each point is [x, y] with numbers, got {p!r}")
        x, y = float(p[0]), float(p[1])
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise Invalid(f"{where}: point {p!r} is off the image; x and y run 0…1 (a share of width and height)")
        pairs.append((x, y))
    polygon = Polygon(pairs)
    if not polygon.is_valid or polygon.area < 1e-4:
        reason = explain_validity(polygon) if not polygon.is_valid else "it covers almost none of the image"
        raise Invalid(f"{where}: not a usable polygon ({reason})")
    event_class = item.get("event_class", DEFAULT_EVENT_CLASS.get(purpose))
    if event_class is not None and (not isinstance(event_class, str) or len(event_class) != 4
                                    or not event_class.isdigit()):
        raise Invalid(f"{where}: event_class is a 4-digit event class code, e.g. 0102")
    if purpose == "ignore" and event_class is not None:
        raise Invalid(f"{where}: an ignore zone raises no events, so it has no event_class")
    return Zone(zone_id, purpose, tuple(pairs), event_class)


def zone_around(box: tuple[int, int, int, int], size: tuple[int, int], *, pad: float, zone_id: str = "pavement",
                purpose: str = "no_dumping") -> dict:
    """A rectangular zone (as JSON) around a box of pixels on a picture of `size`, `pad` (a share
    of the picture) wider on every side: e.g. where a test clip's bag will be left."""
    x, y, w, h = box
    width, height = size
    x0, y0 = max(0.0, x / width - pad), max(0.0, y / height - pad)
    x1, y1 = min(1.0, (x + w) / width + pad), min(1.0, (y + h) / height + pad)
    return {"id": zone_id, "purpose": purpose, "points": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]}
