"""Zones on a camera image: what is accepted, and the message for what is not."""
from __future__ import annotations

import pytest

from gis.errors import Invalid
from video.zones import parse_zones

GATE = {"id": "gate", "purpose": "no_dumping", "points": [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9], [0.1, 0.9]]}


def test_a_zone_list_is_read_with_defaults():
    zones = parse_zones([GATE, {"id": "trees", "purpose": "ignore", "points": [[0, 0], [1, 0], [1, 0.2]]}])
    assert [z.event_class for z in zones] == ["0102", None]          # 暴露垃圾 by default
    assert zones[0].pixels(640, 360)[2] == (256, 323)       # 0.4 × 639, 0.9 × 359
    assert parse_zones(None) == []
    assert parse_zones([z.as_json() for z in zones]) == zones


@pytest.mark.parametrize("raw, words", [
    ({"id": "x"}, "JSON list"),
    ([{**GATE, "purpose": "parking"}], "purpose must be one of"),
    ([{**GATE, "points": [[0.1, 0.1], [0.2, 0.2]]}], "3-64"),
    ([{**GATE, "points": [[0.1, 0.1], [1.5, 0.2], [0.3, 0.9]]}], "off the image"),
    ([{**GATE, "points": [[0, 0], [1, 1], [1, 0], [0, 1]]}], "not a usable polygon"),   # a bow tie
    ([{**GATE, "points": [[0.1, 0.1], [0.1001, 0.1], [0.1, 0.1001]]}], "almost none"),
    ([{**GATE, "event_class": "garbage"}], "4-digit"),
    ([{**GATE, "purpose": "ignore", "event_class": "0102"}], "no event_class"),
    ([GATE, GATE], "repeat"),
    ([{**GATE, "colour": "red"}], "unknown keys"),
    ([{**GATE, "points": [[0.1, "a"], [0.2, 0.2], [0.3, 0.3]]}], "numbers"),
])
def test_malformed_zones_are_refused_with_a_reason(raw, words):
    with pytest.raises(Invalid, match=words):
        parse_zones(raw)
