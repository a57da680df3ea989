"""The case transition table, loaded from data (workflows/seed/case_flow.yaml) and checked.

(state, action) → roles, guards, next state, effects. Guards and effects are looked up by
name in workflows.case_rules, so the table cannot name behaviour that does not exist."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from gis.errors import Invalid
from gis.roles import ROLES

FLOW_FILE = Path(__file__).parent / "seed" / "case_flow.yaml"
STAGES = ("核实", "立案", "派遣", "核查", "结案")


@dataclass(frozen=True)
class State:
    key: str
    name: str
    clock: str | None = None        # stage limit running in this state
    handling: bool = False          # the handling limit (处置时限) runs
    paused: bool = False            # 挂账: clocks stopped
    final: bool = False


@dataclass(frozen=True)
class Transition:
    source: str
    action: str
    target: str
    roles: frozenset[str]
    guards: tuple[str, ...]
    effects: tuple[str, ...]


@dataclass(frozen=True)
class CaseFlow:
    states: dict[str, State]
    actions: dict[str, str]                          # action → Chinese name
    table: dict[tuple[str, str], Transition]
    default_part_limit: tuple[str, float]            # (kind, value) for part classes without one

    def transition(self, state: str, action: str) -> Transition | None:
        return self.table.get((state, action))

    def actions_from(self, state: str, role: str | None = None) -> list[str]:
        return [t.action for (s, _), t in self.table.items() if s == state and (role is None or role in t.roles)]


def load_flow(path: Path = FLOW_FILE, guards: set[str] | None = None, effects: set[str] | None = None) -> CaseFlow:
    """Read and check the table; errors name the entry and the field."""
    if guards is None or effects is None:
        from workflows import case_rules

        guards, effects = set(case_rules.GUARDS), set(case_rules.EFFECTS)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    states = {}
    for key, spec in doc["states"].items():
        if spec.get("clock") and spec["clock"] not in STAGES:
            raise Invalid(f"{path.name}: state {key}: clock {spec['clock']!r} is not one of {STAGES}")
        states[key] = State(key, spec["name"], spec.get("clock"), bool(spec.get("handling")),
                            bool(spec.get("paused")), bool(spec.get("final")))
    actions = {key: spec["name"] for key, spec in doc["actions"].items()}
    table: dict[tuple[str, str], Transition] = {}
    for n, entry in enumerate(doc["transitions"], start=1):
        where = f"{path.name}: transition {n} ({entry.get('action')})"
        sources = entry["from"] if isinstance(entry["from"], list) else [entry["from"]]
        action = entry["action"]
        if action not in actions:
            raise Invalid(f"{where}: action {action!r} is not declared under actions")
        for role in entry["roles"]:
            if role not in ROLES:
                raise Invalid(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
        for name in entry.get("guards", []):
            if name not in guards:
                raise Invalid(f"{where}: guard {name!r} does not exist")
        for name in entry.get("effects", []):
            if name not in effects:
                raise Invalid(f"{where}: effect {name!r} does not exist")
        for source in sources:
            if source not in states:
                raise Invalid(f"{where}: from-state {source!r} is not declared under states")
            target = source if entry["to"] == "same" else entry["to"]
            if target not in states:
                raise Invalid(f"{where}: to-state {target!r} is not declared under states")
            if states[source].final:
                raise Invalid(f"{where}: {source!r} is final; nothing may leave it")
            if (source, action) in table:
                raise Invalid(f"{where}: ({source}, {action}) is defined twice")
            table[(source, action)] = Transition(source, action, target, frozenset(entry["roles"]),
                                                 tuple(entry.get("guards", [])), tuple(entry.get("effects", [])))
    default = doc.get("default_part_limit") or {}
    if default.get("kind") not in ("工作时", "工作日", "自然时") or not default.get("value", 0) > 0:
        raise Invalid(f"{path.name}: default_part_limit needs kind (工作时/工作日/自然时) and a positive value")
    return CaseFlow(states, actions, table, (default["kind"], float(default["value"])))
