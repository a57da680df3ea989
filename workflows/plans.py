"""Emergency plans (应急预案) as documents: versioned YAML, checked on load so that a plan that
would not enforce itself — a step depending on itself in a circle, a role nobody fills, a
resource type the city does not know, a deadline before activation — is refused with every
problem named by line and field.

A plan document:

    id: waterlogging                  # stable; `version` counts its revisions
    version: 1
    name: 城市内涝应急预案
    scope: {categories: [自然灾害], subtypes: [水旱灾害, 气象灾害]}
    organisation:                     # command roles → a duty post (值守岗位) or named users
      commander: {post: 县应急指挥长}
      drainage: {post: 排水抢险队长}
    levels:                           # response levels, Ⅳ (一般) … Ⅰ (特别重大); a higher level
      Ⅳ:                             # runs its own steps and those of every lower level
        criteria: 积水深度超过15厘米的路段不超过3处，无人员被困
        steps:
          - id: verify
            title: 现场核实积水范围与深度
            role: drainage            # who does it (a role of the organisation)
            deadline_min: 15          # minutes after activation
            mandatory: true           # the incident cannot close while it is open (unless waived)
            depends_on: []            # steps (of this level or a lower one) done first
            resources: [{type: pump_truck, count: 2}]
            notify: [commander]       # roles told when the task is created
            checklist: [确认积水点位, 拍照回传]
    warning:                          # the public warning (CAP 1.2) template
      event: 城市内涝
      headline: "{level_name}内涝预警：{area}"
      description: …
      instruction: …
      expires_min: 360                # how long an issued warning stays in force (default 6 h)
"""
from __future__ import annotations

import functools
import graphlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gis.catalog import read_catalog
from gis.errors import Invalid

SEED = Path(__file__).parent / "seed"
PLANS_DIR = SEED / "plans"
RESOURCE_TYPES_FILE = SEED / "resource_types.yaml"
EMERGENCY_NAMES_EN_FILE = SEED / "emergency_names_en.yaml"
LEVELS = ("Ⅳ", "Ⅲ", "Ⅱ", "Ⅰ")                     # least to most severe
CAP_URGENCY = ("Immediate", "Expected", "Future", "Past", "Unknown")
CAP_CERTAINTY = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")
WARNING_EXPIRES_MIN = 6 * 60            # an issued warning's time in force, unless the plan says
WARNING_MAX_EXPIRES_MIN = 7 * 24 * 60
MAX_STEPS = 200


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    role: str
    deadline_min: float
    level: str
    mandatory: bool = True
    depends_on: tuple[str, ...] = ()
    resources: tuple[tuple[str, int], ...] = ()
    notify: tuple[str, ...] = ()
    checklist: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    id: str
    version: int
    name: str
    categories: tuple[str, ...]
    subtypes: tuple[str, ...]
    organisation: dict[str, dict]
    levels: dict[str, dict]              # level → {criteria, steps: [Step]}
    warning: dict
    source: dict = field(repr=False, default_factory=dict)

    def steps_for(self, level: str) -> list[Step]:
        """The steps a response at `level` runs: its own and every lower level's."""
        upto = LEVELS[:LEVELS.index(level) + 1]
        return [s for lv in upto if lv in self.levels for s in self.levels[lv]["steps"]]

    def covers(self, category: str, subtype: str | None) -> bool:
        return category in self.categories and (not self.subtypes or subtype in self.subtypes)


class PlanRefused(Invalid):
    """Every problem of a plan document, each naming its line and field."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems))


@functools.cache
def resource_types(path: Path = RESOURCE_TYPES_FILE) -> dict[str, dict]:
    """The resource type catalog (read once per process: it ships with the code)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))["types"]


@functools.cache
def emergency_catalog() -> dict:
    """The four categories with their subtypes, and the levels (shared/standards); read once
    per process, like the resource types."""
    return read_catalog()["emergency"]


@functools.cache
def emergency_names_en() -> dict:
    """English names of the catalog's categories and subtypes (`names`, by Chinese name) and
    levels (`levels`)."""
    return yaml.safe_load(EMERGENCY_NAMES_EN_FILE.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- YAML with line numbers

def _load(text: str) -> tuple[Any, dict[tuple, int]]:
    """The document, and the line (1-based) of every mapping key and list item by path (read
    off the composed node tree, so error messages can name them)."""
    lines: dict[tuple, int] = {}

    def walk(node, path: tuple) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                lines[path + (str(key_node.value),)] = key_node.start_mark.line + 1
                walk(value_node, path + (str(key_node.value),))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if node is not None:
        walk(node, ())
    return yaml.safe_load(text), lines


# ---------------------------------------------------------------- checking

class _Check:
    def __init__(self, lines: dict[tuple, int]):
        self.lines, self.problems = lines, []

    def bad(self, path: tuple, message: str) -> None:
        line = next((self.lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in self.lines), 1)
        where = ".".join(str(p) for p in path) or "the document"
        self.problems.append(f"line {line}, {where}: {message}")

    def text(self, obj: dict, path: tuple, key: str, *, required: bool = True) -> str | None:
        value = obj.get(key)
        if value is None:
            if required:
                self.bad(path + (key,), "missing")
            return None
        if not isinstance(value, str) or not value.strip():
            self.bad(path + (key,), f"must be text, got {value!r}")
            return None
        return value.strip()

    def text_list(self, obj: dict, path: tuple, key: str) -> list[str]:
        value = obj.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.bad(path + (key,), f"must be a list of text, got {value!r}")
            return []
        return [v.strip() for v in value]


def parse_plan(text: str, source: str = "plan") -> Plan:
    """A checked Plan from a YAML document; PlanRefused lists every problem found."""
    try:
        data, lines = _load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise PlanRefused(source, [f"{where}not valid YAML ({getattr(e, 'problem', None) or e})"]) from None
    check = _Check(lines)
    if not isinstance(data, dict):
        raise PlanRefused(source, ["line 1: a plan is a mapping with id, version, name, scope, organisation,"
                                   " levels and warning"])
    known = {"id", "version", "name", "scope", "organisation", "levels", "warning"}
    for key in sorted(set(data) - known, key=str):
        check.bad((str(key),), f"unknown field (a plan has {', '.join(sorted(known))})")
    plan_id = check.text(data, (), "id")
    name = check.text(data, (), "name")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        check.bad(("version",), f"a whole number from 1, got {version!r}")
    categories, subtypes = _scope(check, data.get("scope"))
    organisation = _organisation(check, data.get("organisation"))
    levels = _levels(check, data.get("levels"), organisation)
    warning = _warning(check, data.get("warning"))
    if check.problems:
        raise PlanRefused(source, check.problems)
    return Plan(plan_id, version, name, tuple(categories), tuple(subtypes), organisation, levels, warning, data)


def _scope(check: _Check, scope: Any) -> tuple[list[str], list[str]]:
    if not isinstance(scope, dict):
        check.bad(("scope",), "missing: {categories: [...], subtypes: [...]}")
        return [], []
    catalog = emergency_catalog()["categories"]
    categories = check.text_list(scope, ("scope",), "categories")
    if not categories:
        check.bad(("scope", "categories"), f"name at least one of {', '.join(catalog)}")
    for i, c in enumerate(categories):
        if c not in catalog:
            check.bad(("scope", "categories", i), f"{c!r} is not a category ({', '.join(catalog)})")
    subtypes = check.text_list(scope, ("scope",), "subtypes")
    allowed = {s for c in categories if c in catalog for s in catalog[c]}
    for i, s in enumerate(subtypes):
        if s not in allowed:
            check.bad(("scope", "subtypes", i), f"{s!r} is not a subtype of {', '.join(categories)}")
    return categories, subtypes


def _organisation(check: _Check, org: Any) -> dict[str, dict]:
    if not isinstance(org, dict) or not org:
        check.bad(("organisation",), "missing: command roles, each {post: 值守岗位} or {users: [username, …]}")
        return {}
    out = {}
    for role, holder in org.items():
        path = ("organisation", role)
        if not isinstance(holder, dict) or not (set(holder) & {"post", "users"}) or set(holder) - {"post", "users"}:
            check.bad(path, "a role is filled by {post: 岗位名} or {users: [username, …]}")
            continue
        if "post" in holder and not (isinstance(holder["post"], str) and holder["post"].strip()):
            check.bad(path + ("post",), "the duty post's name")
        if "users" in holder and not (isinstance(holder["users"], list) and holder["users"]
                                      and all(isinstance(u, str) for u in holder["users"])):
            check.bad(path + ("users",), "a list of usernames")
        out[role] = holder
    if "commander" not in out:
        check.bad(("organisation",), "a plan needs a commander role (指挥长): tasks overdue are escalated to it")
    return out


def _levels(check: _Check, levels: Any, organisation: dict) -> dict[str, dict]:
    if not isinstance(levels, dict) or not levels:
        check.bad(("levels",), f"missing: response levels among {', '.join(LEVELS)}, each with criteria and steps")
        return {}
    kinds = resource_types()
    out, seen = {}, {}
    for level in [lv for lv in LEVELS if lv in levels] + [lv for lv in levels if lv not in LEVELS]:
        path = ("levels", level)
        if level not in LEVELS:
            check.bad(path, f"{level!r} is not a response level ({', '.join(LEVELS)})")
            continue
        body = levels[level]
        if not isinstance(body, dict):
            check.bad(path, "a level is {criteria: …, steps: […]}")
            continue
        criteria = check.text(body, path, "criteria")
        raw_steps = body.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            check.bad(path + ("steps",), "a level needs at least one step")
            raw_steps = []
        steps = []
        for i, raw in enumerate(raw_steps):
            step = _step(check, raw, path + ("steps", i), level, organisation, kinds)
            if step is None:
                continue
            if step.id in seen:
                check.bad(path + ("steps", i, "id"), f"step id {step.id!r} is used twice (also at level {seen[step.id]})")
                continue
            seen[step.id] = level
            steps.append(step)
        out[level] = {"criteria": criteria, "steps": steps}
    _dependencies(check, out, seen)
    if sum(len(v["steps"]) for v in out.values()) > MAX_STEPS:
        check.bad(("levels",), f"more than {MAX_STEPS} steps in one plan")
    return out


def _step(check: _Check, raw: Any, path: tuple, level: str, organisation: dict, kinds: dict) -> Step | None:
    if not isinstance(raw, dict):
        check.bad(path, "a step is {id, title, role, deadline_min, …}")
        return None
    known = {"id", "title", "role", "deadline_min", "mandatory", "depends_on", "resources", "notify", "checklist"}
    for key in sorted(set(raw) - known, key=str):
        check.bad(path + (str(key),), f"unknown field (a step has {', '.join(sorted(known))})")
    step_id, title, role = check.text(raw, path, "id"), check.text(raw, path, "title"), check.text(raw, path, "role")
    if role and role not in organisation:
        check.bad(path + ("role",), f"unknown role {role!r}; the organisation has {', '.join(organisation) or 'none'}")
    deadline = raw.get("deadline_min")
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)):
        check.bad(path + ("deadline_min",), f"minutes after activation, a number, got {deadline!r}")
        deadline = None
    elif deadline <= 0:
        check.bad(path + ("deadline_min",), f"must be after activation (more than 0 minutes), got {deadline}")
    mandatory = raw.get("mandatory", True)
    if not isinstance(mandatory, bool):
        check.bad(path + ("mandatory",), "true or false")
    resources = []
    raw_resources = raw.get("resources", [])
    if not isinstance(raw_resources, list):
        check.bad(path + ("resources",), "a list of {type, count}")
        raw_resources = []
    for j, r in enumerate(raw_resources):
        rpath = path + ("resources", j)
        if not isinstance(r, dict) or set(r) - {"type", "count"} or "type" not in r:
            check.bad(rpath, "{type: RESOURCE_TYPE, count: N}")
            continue
        if r["type"] not in kinds:
            check.bad(rpath + ("type",), f"unknown resource type {r['type']!r}; known: {', '.join(sorted(kinds))}")
        count = r.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            check.bad(rpath + ("count",), f"a whole number from 1, got {count!r}")
            count = 1
        resources.append((r["type"], count))
    notify = check.text_list(raw, path, "notify")
    for j, n in enumerate(notify):
        if n not in organisation:
            check.bad(path + ("notify", j), f"unknown role {n!r} to notify")
    depends = check.text_list(raw, path, "depends_on")
    if None in (step_id, title, role, deadline):
        return None
    return Step(step_id, title, role, float(deadline), level, mandatory if isinstance(mandatory, bool) else True,
                tuple(depends), tuple(resources), tuple(notify), tuple(check.text_list(raw, path, "checklist")))


def _dependencies(check: _Check, levels: dict[str, dict], step_levels: dict[str, str]) -> None:
    """Each depends_on names a step of its level or a lower one; no circles."""
    graph = {}
    deadlines = {s.id: s.deadline_min for body in levels.values() for s in body["steps"]}
    for level, body in levels.items():
        for i, step in enumerate(body["steps"]):
            for j, dep in enumerate(step.depends_on):
                path = ("levels", level, "steps", i, "depends_on", j)
                if dep not in step_levels:
                    check.bad(path, f"no step {dep!r} in this plan")
                elif LEVELS.index(step_levels[dep]) > LEVELS.index(level):
                    check.bad(path, f"{dep!r} belongs to the higher level {step_levels[dep]}, which a level-{level}"
                                    " response does not run")
                elif deadlines[dep] > step.deadline_min:
                    check.bad(path, f"{step.id!r} is due {step.deadline_min:g} min after activation, before {dep!r}"
                                    f" (due {deadlines[dep]:g} min), which must be done first")
            graph[step.id] = [d for d in step.depends_on if d in step_levels]
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        cycle = e.args[1]
        check.bad(("levels",), "steps depend on each other in a circle: " + " → ".join(reversed(cycle)))


def _warning(check: _Check, warning: Any) -> dict:
    if not isinstance(warning, dict):
        check.bad(("warning",), "missing: the public warning template {event, headline, description, instruction}")
        return {}
    out = {key: check.text(warning, ("warning",), key) for key in ("event", "headline", "description", "instruction")}
    for key, allowed in (("urgency", CAP_URGENCY), ("certainty", CAP_CERTAINTY)):
        value = warning.get(key, allowed[0])
        if value not in allowed:
            check.bad(("warning", key), f"one of {', '.join(allowed)} (CAP 1.2), got {value!r}")
        out[key] = value
    expires = warning.get("expires_min", WARNING_EXPIRES_MIN)
    if isinstance(expires, bool) or not isinstance(expires, int) or not 1 <= expires <= WARNING_MAX_EXPIRES_MIN:
        check.bad(("warning", "expires_min"), f"whole minutes an issued warning stays in force, 1 to"
                                               f" {WARNING_MAX_EXPIRES_MIN} (7 days), got {expires!r}")
    out["expires_min"] = expires
    for key in sorted(set(warning) - {"event", "headline", "description", "instruction", "urgency", "certainty",
                                      "expires_min"}, key=str):
        check.bad(("warning", str(key)), "unknown field")
    return out


def load_plan_file(path: Path) -> Plan:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PlanRefused(str(path), [f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start});"
                                      " save the plan as UTF-8"]) from None
    return parse_plan(text, str(path))


def shipped_plans() -> list[Plan]:
    """The plans that come with the system (the demo city's)."""
    return [load_plan_file(p) for p in sorted(PLANS_DIR.glob("*.yaml"))]
