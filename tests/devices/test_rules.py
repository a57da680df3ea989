"""The rules engine on its own: hysteresis, minimum duration, equality, rate of change,
combined conditions, overrides, and rules refused with a message that names the problem."""
from __future__ import annotations

import pytest

from devices.rules import evaluate, merge_overrides, parse_rule, parse_rules
from gis.errors import Invalid

FIELDS = {"depth_cm": {"type": "number"}, "open": {"type": "boolean"}, "on": {"type": "boolean"},
          "current_a": {"type": "number"}}


def rule(**raw):
    return parse_rule({"id": "r", "name": "规则", "severity": "major", **raw}, FIELDS, "test")


def run(r, readings):
    """(ts, values) in order → [(kind, ts)] of the transitions."""
    state: dict = {}
    return [(t.kind, t.ts) for ts, values in readings for t in evaluate([r], state, ts, values)]


def test_hysteresis_raises_once_and_clears_only_below_the_clear_threshold():
    r = rule(when={"field": "depth_cm", "above": 15, "clear_below": 10})
    depths = [5, 16, 14, 12, 15.5, 9, 14, 16]
    assert run(r, [(t, {"depth_cm": d}) for t, d in enumerate(depths)]) == [
        ("raise", 1), ("repeat", 2), ("repeat", 3), ("repeat", 4), ("clear", 5), ("raise", 7)]


def test_minimum_duration_counts_the_readings_own_time():
    r = rule(when={"field": "depth_cm", "above": 15}, for_s=60)
    readings = [(0, {"depth_cm": 20}), (30, {"depth_cm": 21}), (59, {"depth_cm": 22}), (60, {"depth_cm": 22}),
                (90, {"depth_cm": 3})]
    assert run(r, readings) == [("raise", 60), ("clear", 90)]
    # a dip before the duration is up starts the count again
    readings = [(0, {"depth_cm": 20}), (50, {"depth_cm": 3}), (70, {"depth_cm": 20}), (110, {"depth_cm": 20})]
    assert run(r, readings) == []


def test_equals_and_a_reading_without_the_field_changes_nothing():
    r = rule(when={"field": "open", "equals": True})
    assert run(r, [(0, {"open": False}), (1, {"open": True}), (2, {"depth_cm": 1}), (3, {"open": False})]) == [
        ("raise", 1), ("clear", 3)]


def test_a_noisy_gauge_does_not_trip_the_rate_rule():
    r = rule(when={"field": "depth_cm", "rate_above": 5, "per_s": 60})
    assert run(r, [(t, {"depth_cm": 3.0 * (t % 2)}) for t in range(300)]) == []      # 0, 3, 0, 3 … every second


def test_rate_of_change_per_minute():
    r = rule(when={"field": "depth_cm", "rate_above": 5, "per_s": 60})
    readings = [(0, {"depth_cm": 0}), (60, {"depth_cm": 4}), (120, {"depth_cm": 10}), (180, {"depth_cm": 12})]
    assert run(r, readings) == [("raise", 120), ("clear", 180)]


def test_all_combines_latched_leaves_across_readings():
    r = rule(when={"all": [{"field": "on", "equals": True}, {"field": "current_a", "below": 0.1, "clear_above": 0.2}]})
    readings = [(0, {"on": True, "current_a": 1.5}), (1, {"current_a": 0.05}), (2, {"current_a": 0.15}),
                (3, {"on": False}), (4, {"on": True, "current_a": 0.3})]
    assert run(r, readings) == [("raise", 1), ("repeat", 2), ("clear", 3)]


@pytest.mark.parametrize("raw, message", [
    ({"when": {"field": "nope", "above": 1}}, "field 'nope' is not one this type reports"),
    ({"when": {"field": "depth_cm", "above": 10, "clear_below": 12}}, "on the safe side"),
    ({"when": {"field": "open", "above": 1}}, "needs a number field"),
    ({"when": {"field": "depth_cm", "rate_above": 1}}, "needs per_s"),
    ({"when": {"field": "depth_cm", "above": 1, "below": 0}}, "exactly one of"),
    ({"when": {"all": []}}, "non-empty list"),
    ({"when": {"field": "open", "equals": 1}}, "equals must be a boolean"),
    ({"when": {"silent_s": -5}}, "heartbeat"),
    ({"when": {"field": "depth_cm", "above": float("nan")}}, "must be a number"),
    ({"when": {"field": "depth_cm", "above": 1}, "severity": "fatal"}, "severity must be one of"),
    ({"when": {"field": "depth_cm", "above": 1}, "case": {"event": "04"}}, "event class code"),
    ({"when": {"field": "depth_cm", "above": 1}, "part_status": "完好"}, "part_status"),
    ({"when": {"field": "depth_cm", "above": 1}, "colour": "red"}, "unknown key"),
])
def test_bad_rules_are_refused_with_the_reason(raw, message):
    with pytest.raises(Invalid, match=message):
        parse_rule({"id": "r", "name": "规则", "severity": "major", **raw}, FIELDS, "test")


def test_overrides_replace_switch_off_and_add():
    defaults = parse_rules([{"id": "deep", "name": "深", "severity": "major", "when": {"field": "depth_cm", "above": 15}},
                            {"id": "open", "name": "开", "severity": "critical", "when": {"field": "open", "equals": True}}],
                           FIELDS, "type")
    merged = merge_overrides(defaults, {"deep": {"when": {"field": "depth_cm", "above": 25}}, "open": {"enabled": False},
                                        "low": {"name": "低", "severity": "minor",
                                                "when": {"field": "depth_cm", "below": 1}}}, FIELDS, "device d1")
    assert {r.id: r.when for r in merged} == {"deep": {"field": "depth_cm", "above": 25},
                                              "low": {"field": "depth_cm", "below": 1}}
    assert next(r for r in merged if r.id == "deep").severity == "major"      # the rest kept from the type
    with pytest.raises(Invalid, match="override deep"):
        merge_overrides(defaults, {"deep": {"when": {"field": "depth_cm", "above": "x"}}}, FIELDS, "device d1")
