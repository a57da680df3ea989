"""Device rules (设备告警规则): parsed from the type catalog or an operator's override, and
evaluated reading by reading against a small state kept per device.

A rule's condition is a tree of leaves combined with `all` / `any`. A leaf with hysteresis
(`above` … `clear_below`) is latched: once true it stays true until the value crosses the
clear threshold, so a reading hovering at the limit does not raise and clear an alarm on
every message. A reading without the leaf's field leaves the leaf as it was. `for_s` is the
minimum duration: the condition must hold that long (by the readings' own timestamps)
before the alarm is raised. Heartbeat rules (`silent_s`) are judged by time, not readings
(devices.device_sweep).

The state is plain JSON (stored per device in device_state.rules) so any worker can pick up
a device where another left it."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gis.errors import Invalid

SEVERITIES = ("critical", "major", "minor", "warning")
_LEAF_KEYS = {"field", "above", "below", "equals", "clear_below", "clear_above", "rate_above", "per_s"}
_RULE_KEYS = {"id", "name", "severity", "when", "for_s", "part_status", "case", "enabled"}
PART_STATUSES = ("破损", "丢失", "占用")


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    severity: str
    when: dict
    for_s: float = 0.0
    part_status: str | None = None
    case: dict | None = None

    @property
    def silent_s(self) -> float | None:
        return self.when.get("silent_s")


@dataclass
class Transition:
    """An alarm to raise, to clear, or (still active) seen again."""
    rule: Rule
    kind: str                       # raise | clear | repeat
    ts: float                       # the reading's time (Unix seconds)
    values: dict = field(default_factory=dict)


# ---------------------------------------------------------------- parsing

def parse_rules(raw: Any, fields: dict[str, dict], where: str) -> list[Rule]:
    if not isinstance(raw, list):
        raise Invalid(f"{where}: rules must be a list")
    rules = [parse_rule(r, fields, f"{where} rule {i + 1}") for i, r in enumerate(raw)]
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise Invalid(f"{where}: rule ids must be unique (found {sorted({i for i in ids if ids.count(i) > 1})})")
    return rules


def parse_rule(raw: Any, fields: dict[str, dict], where: str) -> Rule:
    if not isinstance(raw, dict):
        raise Invalid(f"{where}: a rule is a mapping with id, name, severity and when")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise Invalid(f"{where}: unknown key(s) {sorted(unknown)}; a rule has {sorted(_RULE_KEYS)}")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not rule_id.replace("_", "").isalnum() or not rule_id.isascii():
        raise Invalid(f"{where}: id must be a short ASCII name like cover_open")
    where = f"{where} ({rule_id})"
    if not isinstance(raw.get("name"), str) or not raw["name"].strip():
        raise Invalid(f"{where}: name (shown to operators) is missing")
    if raw.get("severity") not in SEVERITIES:
        raise Invalid(f"{where}: severity must be one of {', '.join(SEVERITIES)}")
    when = raw.get("when")
    if isinstance(when, dict) and "silent_s" in when:
        if set(when) != {"silent_s"} or not _positive(when["silent_s"]):
            raise Invalid(f"{where}: a heartbeat rule is when: {{silent_s: SECONDS}} alone")
    else:
        _check_condition(when, fields, f"{where} when")
    for_s = raw.get("for_s", 0)
    if not _number(for_s) or for_s < 0:
        raise Invalid(f"{where}: for_s must be a number of seconds ≥ 0")
    status = raw.get("part_status")
    if status is not None and status not in PART_STATUSES:
        raise Invalid(f"{where}: part_status must be one of {', '.join(PART_STATUSES)}")
    case = raw.get("case")
    if case is not None and not (isinstance(case, dict) and (
            (set(case) == {"event"} and isinstance(case["event"], str) and len(case["event"]) == 4
             and case["event"].isdigit()) or case == {"part": True})):
        raise Invalid(f"{where}: case must be {{event: \"NNNN\"}} (an event class code) or {{part: true}}")
    return Rule(rule_id, raw["name"].strip(), raw["severity"], when, float(for_s), status, case)


def _check_condition(cond: Any, fields: dict[str, dict], where: str) -> None:
    if not isinstance(cond, dict) or not cond:
        raise Invalid(f"{where}: a condition is a mapping (field with above/below/equals/rate_above, or all/any)")
    for combine in ("all", "any"):
        if combine in cond:
            if set(cond) != {combine} or not isinstance(cond[combine], list) or not cond[combine]:
                raise Invalid(f"{where}: {combine} takes a non-empty list of conditions and nothing beside it")
            for i, sub in enumerate(cond[combine]):
                _check_condition(sub, fields, f"{where}.{combine}[{i}]")
            return
    unknown = set(cond) - _LEAF_KEYS
    if unknown:
        raise Invalid(f"{where}: unknown key(s) {sorted(unknown)}")
    name = cond.get("field")
    if name not in fields:
        raise Invalid(f"{where}: field {name!r} is not one this type reports ({', '.join(fields)})")
    kind = fields[name]["type"]
    tests = [k for k in ("above", "below", "equals", "rate_above") if k in cond]
    if len(tests) != 1:
        raise Invalid(f"{where}: give exactly one of above, below, equals, rate_above")
    test = tests[0]
    if test == "equals":
        expected = bool if kind == "boolean" else (int, float)
        if not isinstance(cond["equals"], expected) or (kind == "number" and isinstance(cond["equals"], bool)):
            raise Invalid(f"{where}: equals must be a {kind} like the field {name}")
        if set(cond) - {"field", "equals"}:
            raise Invalid(f"{where}: equals takes no clear_* or per_s")
        return
    if kind != "number":
        raise Invalid(f"{where}: {test} needs a number field; {name} is {kind}")
    if not _number(cond[test]):
        raise Invalid(f"{where}: {test} must be a number")
    if test == "rate_above":
        if not _positive(cond.get("per_s")):
            raise Invalid(f"{where}: rate_above needs per_s, the seconds the rate is per (60: per minute)")
        if set(cond) - {"field", "rate_above", "per_s"}:
            raise Invalid(f"{where}: rate_above takes only per_s beside it")
        return
    clear_key, wrong_key = ("clear_below", "clear_above") if test == "above" else ("clear_above", "clear_below")
    if wrong_key in cond or "per_s" in cond:
        raise Invalid(f"{where}: {test} takes {clear_key} (hysteresis), not {wrong_key} or per_s")
    if clear_key in cond:
        clear = cond[clear_key]
        if not _number(clear) or (clear > cond[test] if test == "above" else clear < cond[test]):
            raise Invalid(f"{where}: {clear_key} must be a number on the safe side of {test} ({cond[test]})")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _positive(v: Any) -> bool:
    return _number(v) and v > 0


def merge_overrides(defaults: list[Rule], overrides: dict, fields: dict[str, dict], where: str) -> list[Rule]:
    """A device's rules: its type's, each replaced by the device's own version or switched off
    ({"rule_id": {"enabled": false}}), plus rules of its own."""
    if not isinstance(overrides, dict):
        raise Invalid(f"{where}: rule overrides are a mapping of rule id → rule")
    by_id = {r.id: r for r in defaults}
    for rule_id, raw in overrides.items():
        if raw == {"enabled": False}:
            by_id.pop(rule_id, None)
            continue
        if not isinstance(raw, dict):
            raise Invalid(f"{where}: the override of {rule_id} must be a rule or {{enabled: false}}")
        base = by_id.get(rule_id)
        merged = {**(_as_raw(base) if base else {}), **{k: v for k, v in raw.items() if k != "enabled"}, "id": rule_id}
        by_id[rule_id] = parse_rule(merged, fields, f"{where} override {rule_id}")
    return list(by_id.values())


def _as_raw(rule: Rule) -> dict:
    raw = {"id": rule.id, "name": rule.name, "severity": rule.severity, "when": rule.when, "for_s": rule.for_s}
    if rule.part_status:
        raw["part_status"] = rule.part_status
    if rule.case:
        raw["case"] = rule.case
    return raw


# ---------------------------------------------------------------- evaluation

def evaluate(rules: tuple[Rule, ...] | list[Rule], state: dict, ts: float, values: dict) -> list[Transition]:
    """Judge one reading (newer than any before it) and update `state` in place:
    {"rules": {rule_id: {"since": ts|None, "active": bool, "latch": {path: bool, path@: [value, ts]}}}}."""
    rule_states = state.setdefault("rules", {})
    out = []
    for rule in rules:
        if rule.silent_s is not None:
            continue
        rs = rule_states.get(rule.id) or {"since": None, "active": False, "latch": {}}
        holds = _holds(rule.when, values, ts, rs["latch"], "w")
        if holds is None:                          # nothing in this reading bears on the rule
            if rs["active"]:
                continue
            holds = rs["since"] is not None
        if holds:
            if rs["since"] is None:
                rs["since"] = ts
            if rs["active"]:
                out.append(Transition(rule, "repeat", ts, values))
            elif ts - rs["since"] >= rule.for_s:
                rs["active"] = True
                out.append(Transition(rule, "raise", ts, values))
        else:
            rs["since"] = None
            if rs["active"]:
                rs["active"] = False
                out.append(Transition(rule, "clear", ts, values))
        # Only what differs from a quiet rule is kept: most devices' state stays tiny.
        if rs["active"] or rs["since"] is not None or rs["latch"]:
            rule_states[rule.id] = rs
        else:
            rule_states.pop(rule.id, None)
    return out


def holds_now(rule: Rule, values: dict) -> bool | None:
    """Whether `values` meet the rule's raising condition, judged afresh (no hysteresis latch,
    no duration): None when they say nothing about it, or it cannot be told from one reading
    (a rate of change, a heartbeat)."""
    if rule.silent_s is not None:
        return None
    return _holds(rule.when, values, 0.0, {}, "w")


def _holds(cond: dict, values: dict, ts: float, latch: dict, path: str) -> bool | None:
    """True/False, or None when the reading says nothing about this condition."""
    for combine, reduce in (("all", all), ("any", any)):
        if combine in cond:
            parts = [_holds(c, values, ts, latch, f"{path}.{i}") for i, c in enumerate(cond[combine])]
            known = [p if p is not None else latch.get(f"{path}.{i}", False) for i, p in enumerate(parts)]
            if all(p is None for p in parts):
                return None
            return reduce(known)
    name = cond["field"]
    if name not in values:
        return None
    value = values[name]
    was = latch.get(path, False)
    if "equals" in cond:
        now = value == cond["equals"]             # the decoder has checked the value's type
    elif "rate_above" in cond:
        # Over a window of per_s, not reading to reading: a gauge reporting every second
        # would otherwise alarm on its own noise. The reference is the first reading of the
        # window; the rate is judged once the window is full, then the next window starts.
        ref = latch.get(path + "@")
        if ref is None:
            latch[path + "@"] = [value, ts]
            return None
        if ts - ref[1] < cond["per_s"]:
            return None
        now = (value - ref[0]) / (ts - ref[1]) * cond["per_s"] > cond["rate_above"]
        latch[path + "@"] = [value, ts]
    elif "above" in cond:
        now = value >= cond.get("clear_below", cond["above"]) if was else value > cond["above"]
    else:
        now = value <= cond.get("clear_above", cond["below"]) if was else value < cond["below"]
    if now:
        latch[path] = True
    else:
        latch.pop(path, None)                      # false is the default
    return now
