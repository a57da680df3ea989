"""综合评价 — indicators, weighted scores and A–E grades for inspectors, operators, shift
leads, dispatchers, departments and areas, over any period [start, end).

Formulas and weights are data: the catalog document's `evaluation:` section (in the
database, editable) completed by workflows/seed/evaluation.yaml. Formulas are parsed with
`ast` and run by a tiny interpreter that knows numbers, names, + - * / and parentheses;
nothing is ever handed to Python's eval. A division by 0 makes an indicator undefined
(None); a weighted score leaves undefined terms out and scales the other weights up to the
same total (see Formula.score), so "no cases" neither rewards nor punishes.

Base counts come from the append-only case history (case_transition) and case_timer.

Timed tasks (按时X). Each stay of a case in a state with a stage clock (核实, 立案, 派遣,
核查, 结案) is a task. Its deadline is the stage_due timer the stay armed: every entry into a
clocked state arms exactly one, so the k-th entry of a case owns its k-th stage_due timer
(by id) — the deadline in force at the time, whether or not the timer loop ran. If a case's
timers do not pair up one-to-one with its entries (a stage limit was switched off or on
meanwhile), that case falls back to the escalations: a task is late if the timer loop
recorded a stage_due 'escalate' during it. A task is on time when the case's next step came
no later than the deadline. It counts once, in the period in which its outcome became
known: when it was done, if on time; when its deadline passed, if not. Open tasks not yet
overdue are not counted. A task is charged to whoever completed it with one of the role's
`done_by` actions; an open overdue one to the inspector it is assigned to.

Handling tasks (处置). Each dispatch to a department is one task, until the case's next
dispatch; a task the department returned (退回) does not count against it. It is handled
when its latest 'handle' was not followed by a failed check (返工 reopens it), on time (按期)
when that handle's recorded `on_time` is true (the handling deadline with extensions and
suspensions). Decided as above; an unhandled task whose deadline passed is 超期未处置.

Plain events count when they happened. Per role:
- 监督员: 上报数 their reports; 有效上报数 those filed (立案) since; 立案数 cases filed in
  their patrol area; 漏报数 of those, first reported by the public or the hotline with no
  inspector among the reporters; 应/按时核实数, 应/按时核查数 their stage tasks.
- 受理员: 受理数 reports they filed, rejected or merged; 应/按时核实派发数 their 立案-stage
  decisions on reports; 应/按时核查派发数 their send_check of handled cases;
  受理数分值 = 受理数 / the best operator's.
- 值班长: 立案数 their filings; 作废数 of those, voided since; 应/按时立案数 their 立案-stage
  decisions; 应/按时结案数 their closings.
- 派遣员: 派遣数 their dispatches; 返工数 of those, returned by the department (the dispatch
  had to be redone); 应/按时派遣数 their 派遣-stage tasks; 派遣数分值 as 受理数分值.
- 专业部门: 应处置数 tasks decided in the period; 处置数 handled; 按期处置数 / 超期处置数
  handled on time / late; 超期未处置数 overdue unhandled; 返工数 tasks reworked at least once;
  应结案数 = 应处置数; 按期结案数 handled on time and closed; 平均处置时长 hours from dispatch
  to the final handle (natural time).
- 街道/社区/网格 (by grid code prefix): 上报数, 立案数 in the period; 结案数 / 按期结案数 of
  the cases filed in the period, closed since / closed with an on-time final handle; the
  handling task counts of the cases located there (超期数 = late + overdue unhandled).
"""
from __future__ import annotations

import ast
import csv
import datetime as dt
import io
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import psycopg
import yaml

from gis.errors import Invalid
from workflows.case_flow import CaseFlow, load_flow

EVALUATION_FILE = Path(__file__).parent / "seed" / "evaluation.yaml"
FINAL_STATES = ("not_filed", "closed", "void")
MAX_ID = 2**63 - 1
MAX_FORMULA_LENGTH = 500


# ================================================================ formulas
class FormulaError(Invalid):
    """A formula that is not allowed or cannot be evaluated."""


_OPERATORS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
# What to call the syntax we refuse, so the message says what was wrong.
_REFUSED = {ast.Call: "function calls are", ast.Attribute: "attribute access is", ast.Subscript: "indexing is",
            ast.Compare: "comparisons are", ast.BoolOp: "and/or are", ast.Lambda: "lambdas are",
            ast.IfExp: "if-else is", ast.Pow: "the power operator ** is", ast.FloorDiv: "// is", ast.Mod: "% is",
            ast.BitAnd: "& is", ast.BitOr: "| is", ast.BitXor: "^ is", ast.LShift: "<< is", ast.RShift: ">> is",
            ast.MatMult: "@ is", ast.JoinedStr: "f-strings are"}


def _refuse(text: str, what: str) -> FormulaError:
    return FormulaError(f"formula {text!r}: {what} not allowed; a formula may use numbers, indicator names,"
                        " + - * / and parentheses")


def _check(node: ast.AST, text: str) -> None:
    if isinstance(node, ast.Expression):
        return _check(node.body, text)
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _OPERATORS:
            raise _refuse(text, _REFUSED.get(type(node.op), f"the operator {type(node.op).__name__} is"))
        _check(node.left, text)
        return _check(node.right, text)
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise _refuse(text, f"the operator {type(node.op).__name__} is")
        return _check(node.operand, text)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise _refuse(text, f"the constant {node.value!r} is")
        return None
    if isinstance(node, ast.Name):
        if node.id.startswith("_"):
            raise _refuse(text, f"the name {node.id!r} (leading underscore) is")
        return None
    raise _refuse(text, _REFUSED.get(type(node), f"{type(node).__name__} syntax is"))


def _evaluate(node: ast.AST, values: dict[str, float | None]) -> float | None:
    """The value, or None when it is undefined (a division by 0 or an undefined input)."""
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.UnaryOp):
        v = _evaluate(node.operand, values)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    left, right = _evaluate(node.left, values), _evaluate(node.right, values)
    if left is None or right is None:
        return None
    if isinstance(node.op, ast.Div) and right == 0:
        return None
    return _OPERATORS[type(node.op)](left, right)


def _number(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        v = _number(node.operand)
        return None if v is None else -v
    return None


def _weighted_terms(node: ast.AST, sign: float = 1.0) -> list[tuple[float, ast.AST]] | None:
    """`a*0.4 + (1-b)*0.2 …` → [(0.4, a), (0.2, 1-b)]; None when not such a sum."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        left = _weighted_terms(node.left, sign)
        right = _weighted_terms(node.right, -sign if isinstance(node.op, ast.Sub) else sign)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        for weight, expr in ((node.right, node.left), (node.left, node.right)):
            w = _number(weight)
            if w is not None and _number(expr) is None:
                return [(sign * w, expr)]
    return None


@dataclass(frozen=True)
class Formula:
    text: str
    tree: ast.Expression = field(repr=False, compare=False)

    @classmethod
    def parse(cls, text: Any) -> "Formula":
        text = str(text).strip()
        if not text:
            raise FormulaError("a formula is empty")
        if len(text) > MAX_FORMULA_LENGTH:
            raise FormulaError(f"formula {text[:40]!r}…: longer than {MAX_FORMULA_LENGTH} characters")
        try:
            tree = ast.parse(text, mode="eval")
        except (SyntaxError, ValueError, RecursionError) as e:
            raise FormulaError(f"formula {text!r} cannot be read: {getattr(e, 'msg', e)}") from None
        _check(tree, text)
        return cls(text, tree)

    @cached_property
    def names(self) -> frozenset[str]:
        return frozenset(n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name))

    @cached_property
    def terms(self) -> list[tuple[float, ast.AST]] | None:
        return _weighted_terms(self.tree.body)

    def _values(self, values: dict[str, float | None]) -> dict[str, float | None]:
        missing = self.names - values.keys()
        if missing:
            raise FormulaError(f"formula {self.text!r}: unknown indicator(s) {', '.join(sorted(missing))}")
        return values

    def evaluate(self, values: dict[str, float | None]) -> float | None:
        """The plain value: None if any input is undefined or a divisor is 0."""
        return _evaluate(self.tree.body, self._values(values))

    def score(self, values: dict[str, float | None]) -> float | None:
        """A weighted sum with its undefined terms left out and the remaining weights scaled
        up to the same total; a formula that is not a weighted sum is evaluated plainly."""
        terms = self.terms
        if not terms:
            return self.evaluate(values)
        values = self._values(values)
        total = sum(w for w, _ in terms)
        known = [(w, v) for w, expr in terms if (v := _evaluate(expr, values)) is not None]
        used = sum(w for w, _ in known)
        if not known or used == 0:
            return None
        return sum(w * v for w, v in known) * total / used


# ================================================================ definitions (data)
@dataclass(frozen=True)
class Subject:
    key: str               # API name
    role: str              # the catalog's evaluation key
    kind: str              # user / department / area
    user_role: str | None = None
    level: int | None = None          # area code length


SUBJECTS = {s.key: s for s in (
    Subject("inspector", "监督员", "user", "inspector"),
    Subject("operator", "受理员", "user", "operator"),
    Subject("shift_lead", "值班长", "user", "shift_lead"),
    Subject("dispatcher", "派遣员", "user", "dispatcher"),
    Subject("department", "专业部门", "department"),
    Subject("street", "区域", "area", level=9),
    Subject("community", "区域", "area", level=12),
    Subject("grid", "区域", "area", level=15),
)}

# The base counts each role's formulas can use, in display order (defined in the module
# docstring, computed by the SQL below); 应X数/按时X数 of the stage tasks come from the data.
BASE_COUNTS = {
    "监督员": ["上报数", "有效上报数", "立案数", "漏报数"],
    "受理员": ["受理数"],
    "值班长": ["立案数", "作废数"],
    "派遣员": ["派遣数", "返工数"],
    "专业部门": ["应处置数", "处置数", "按期处置数", "超期处置数", "超期未处置数", "返工数", "应结案数", "按期结案数",
             "平均处置时长"],
    "区域": ["上报数", "立案数", "结案数", "按期结案数", "应处置数", "处置数", "按期处置数", "超期数", "返工数",
           "平均处置时长"],
}
HOURS = "平均处置时长"          # hours, not a count


@dataclass(frozen=True)
class StageTask:
    name: str              # 核实 → 应核实数 / 按时核实数
    state: str
    done_by: tuple[str, ...]


@dataclass
class RoleSpec:
    role: str
    counts: list[str]                      # base counts
    stage_tasks: list[StageTask]
    normalise: dict[str, str]              # value score → the count it normalises
    formulas: dict[str, Formula]           # derived indicators, in evaluation order
    score: Formula
    fields: list[str]                      # the catalog's preferred columns first

    @property
    def columns(self) -> list[str]:
        rest = [c for c in [*self.counts, *self.normalise, *self.formulas] if c not in self.fields]
        return self.fields + rest


@dataclass
class Definitions:
    specs: dict[str, RoleSpec]
    grades: list[tuple[str, float, float]]       # (grade, low, high), best first
    score_scale: float
    not_steps: list[str]
    intake_actions: list[str]
    missed_sources: list[str]

    def grade(self, score: float | None) -> str | None:
        if score is None:
            return None
        for name, low, _high in self.grades:
            if score >= low:
                return name
        return self.grades[-1][0]


def _ordered_formulas(role: str, texts: dict[str, Any], available: set[str]) -> dict[str, Formula]:
    """Parse and order so every formula comes after the indicators it uses; refuse unknown
    names and cycles with a message naming the role and formula."""
    parsed = {}
    for name, text in texts.items():
        try:
            parsed[name] = Formula.parse(text)
        except FormulaError as e:
            raise FormulaError(f"evaluation of {role}, {name}: {e}") from None
    ordered: dict[str, Formula] = {}
    pending = dict(parsed)
    while pending:
        ready = [n for n, f in pending.items() if f.names <= available | ordered.keys()]
        if not ready:
            name, f = next(iter(pending.items()))
            unknown = f.names - available - parsed.keys()
            why = (f"unknown indicator(s) {', '.join(sorted(unknown))}" if unknown
                   else "it depends on itself through " + ", ".join(sorted(pending)))
            raise FormulaError(f"evaluation of {role}, {name} = {f.text!r}: {why}")
        for n in ready:
            ordered[n] = pending.pop(n)
    return ordered


def load_definitions(conn: psycopg.Connection, path: Path = EVALUATION_FILE) -> Definitions:
    """The catalog's evaluation section (database) over this module's data file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    row = conn.execute("SELECT body FROM catalog_document").fetchone()
    body = (row["body"] if row else None) or {}
    catalog = body.get("evaluation") or {}
    specs = {}
    for role in BASE_COUNTS:
        tasks = [StageTask(name, spec["state"], tuple(spec["done_by"]))
                 for name, spec in (data.get("stage_tasks", {}).get(role) or {}).items()]
        counts = BASE_COUNTS[role] + [f"{p}{t.name}数" for t in tasks for p in ("应", "按时")]
        normalise = dict((data.get("normalise") or {}).get(role) or {})
        texts = {**((data.get("formulas") or {}).get(role) or {}), **(catalog.get(role) or {})}
        fields = list(texts.pop("fields", None) or [])
        score = texts.pop("score", None)
        if score is None:
            raise FormulaError(f"evaluation of {role}: no score formula in the catalog or {path.name}")
        for name, source in normalise.items():
            if source not in counts:
                raise FormulaError(f"{path.name}: normalise {role}.{name}: {source!r} is not a count of {role}")
        formulas = _ordered_formulas(role, texts, set(counts) | set(normalise))
        unknown = [f for f in fields if f not in {*counts, *normalise, *formulas}]
        if unknown:
            raise FormulaError(f"evaluation of {role}, fields: unknown indicator(s) {', '.join(unknown)}")
        score_formula = _ordered_formulas(role, {"score": score}, set(counts) | set(normalise) | set(formulas))
        specs[role] = RoleSpec(role, counts, tasks, normalise, formulas, score_formula["score"], fields)
    grades = body.get("grades") or {}
    if not grades:
        raise FormulaError("the catalog has no grades (A–E score bands)")
    bands = sorted(((str(k), float(v[0]), float(v[1])) for k, v in grades.items()), key=lambda g: -g[1])
    return Definitions(specs, bands, float(data.get("score_scale", 100)), list(data.get("not_steps", [])),
                       list(data.get("intake_actions", [])), list(data.get("missed_sources", [])))


# ================================================================ counting (SQL over the history)
@dataclass(frozen=True)
class Window:
    start: dt.datetime
    end: dt.datetime
    as_of: dt.datetime              # "now": has an open task's deadline passed?

    def params(self, **extra: Any) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "as_of": self.as_of, "final": list(FINAL_STATES),
                "max_id": MAX_ID, **extra}


# Cases that can hold something decided in the period: open ones, and those with any step
# since its start (a task decided in the period ends, or becomes overdue, after the start).
# A UNION, not an OR: PostgreSQL would test the OR'ed IN row by row.
_CANDIDATES = """cand AS MATERIALIZED (
  SELECT c.id, c.assignee_id, c.grid_code FROM case_file c WHERE c.state <> ALL(%(final)s)
  UNION
  SELECT c.id, c.assignee_id, c.grid_code FROM case_file c
  WHERE c.id IN (SELECT t.case_id FROM case_transition t WHERE t.at >= %(start)s))"""

_STAGE_TASKS_SQL = f"""
WITH {_CANDIDATES},
moves AS (
  SELECT t.id, t.case_id, t.to_state, lead(t.id) OVER w AS next_id, lead(t.at) OVER w AS next_at,
         lead(t.action) OVER w AS next_action, lead(t.actor_id) OVER w AS next_actor
  FROM case_transition t JOIN cand ON cand.id = t.case_id
  WHERE t.action <> ALL(%(not_steps)s)
  WINDOW w AS (PARTITION BY t.case_id ORDER BY t.id)),
entries AS (
  SELECT m.*, row_number() OVER (PARTITION BY m.case_id ORDER BY m.id) AS n,
         count(*) OVER (PARTITION BY m.case_id) AS total
  FROM moves m WHERE m.to_state = ANY(%(clocked)s)),
timers AS (
  SELECT ct.case_id, ct.due_at, row_number() OVER (PARTITION BY ct.case_id ORDER BY ct.id) AS n,
         count(*) OVER (PARTITION BY ct.case_id) AS total
  FROM case_timer ct JOIN cand ON cand.id = ct.case_id WHERE ct.kind = 'stage_due'),
tasks AS MATERIALIZED (
  SELECT e.to_state AS state, e.next_action AS done_action, e.next_at AS done_at,
         coalesce(e.next_actor, CASE WHEN e.next_id IS NULL THEN cand.assignee_id END) AS user_id,
         -- the paired timer's deadline; unpaired: the first stage escalation during the stay
         coalesce(tm.due_at, (SELECT x.at FROM case_transition x WHERE x.case_id = e.case_id
                              AND x.id > e.id AND x.id < coalesce(e.next_id, %(max_id)s)
                              AND x.action = 'escalate' AND x.detail->>'timer' = 'stage_due'
                              ORDER BY x.id LIMIT 1)) AS due_at
  FROM entries e JOIN cand ON cand.id = e.case_id
  LEFT JOIN timers tm ON tm.case_id = e.case_id AND tm.n = e.n AND tm.total = e.total),
judged AS (
  SELECT *, (done_at IS NOT NULL AND (due_at IS NULL OR done_at <= due_at)) AS on_time FROM tasks),
decided AS (
  SELECT *, CASE WHEN on_time THEN done_at WHEN due_at <= %(as_of)s THEN due_at END AS decided_at FROM judged)
SELECT state, done_action, user_id, count(*) AS tasks, count(*) FILTER (WHERE on_time) AS on_time
FROM decided WHERE decided_at >= %(start)s AND decided_at < %(end)s AND user_id IS NOT NULL
GROUP BY state, done_action, user_id
"""

# Steps by people in the period, with what became of them: a report later filed, a filing
# later voided, a dispatch whose next dispatch-or-return is a return (退回).
_ACTOR_EVENTS_SQL = """
WITH ev AS (
  SELECT t.id, t.case_id, t.actor_id, t.action FROM case_transition t
  WHERE t.at >= %(start)s AND t.at < %(end)s AND t.actor_id IS NOT NULL AND t.action = ANY(%(actions)s)),
fates AS (
  SELECT t.case_id, bool_or(t.action = 'file') AS filed, max(t.id) FILTER (WHERE t.action = 'void') AS void_id
  FROM case_transition t WHERE t.case_id IN (SELECT case_id FROM ev) AND t.action IN ('file', 'void')
  GROUP BY t.case_id),
routed AS (
  SELECT t.id, lead(t.action) OVER (PARTITION BY t.case_id ORDER BY t.id) AS next_action
  FROM case_transition t WHERE t.case_id IN (SELECT case_id FROM ev) AND t.action IN ('dispatch', 'return'))
SELECT ev.actor_id AS user_id,
  count(*) FILTER (WHERE ev.action = 'report') AS reports,
  count(*) FILTER (WHERE ev.action = 'report' AND f.filed) AS valid_reports,
  count(*) FILTER (WHERE ev.action = ANY(%(intake)s)) AS intake,
  count(*) FILTER (WHERE ev.action = 'file') AS filed,
  count(*) FILTER (WHERE ev.action = 'file' AND f.void_id > ev.id) AS voided,
  count(*) FILTER (WHERE ev.action = 'dispatch') AS dispatched,
  count(*) FILTER (WHERE ev.action = 'dispatch' AND r.next_action = 'return') AS returned
FROM ev LEFT JOIN fates f ON f.case_id = ev.case_id LEFT JOIN routed r ON r.id = ev.id
GROUP BY ev.actor_id
"""

_INSPECTOR_AREA_SQL = """
WITH filed AS (
  SELECT DISTINCT c.id, c.grid_code, c.source = ANY(%(missed)s) AND NOT EXISTS (
    SELECT 1 FROM case_reporter r WHERE r.case_id = c.id AND r.source = 'inspector') AS missed
  FROM case_transition t JOIN case_file c ON c.id = t.case_id
  WHERE t.action = 'file' AND t.at >= %(start)s AND t.at < %(end)s)
SELECT a.user_id, count(DISTINCT f.id) AS filed, count(DISTINCT f.id) FILTER (WHERE f.missed) AS missed
FROM filed f JOIN user_area a ON f.grid_code LIKE a.area_code || '%%'
JOIN app_user u ON u.id = a.user_id AND u.role = 'inspector'
GROUP BY a.user_id
"""

# One pass over the handling steps of each case: a step belongs to the task of the latest
# dispatch before it.
_HANDLING_SQL = f"""
WITH {_CANDIDATES},
steps AS (
  SELECT t.id, t.case_id, t.at, t.action, t.detail,
         count(*) FILTER (WHERE t.action = 'dispatch') OVER (PARTITION BY t.case_id ORDER BY t.id) AS task_no
  FROM case_transition t JOIN cand ON cand.id = t.case_id
  WHERE t.action IN ('dispatch', 'return', 'handle', 'check_fail', 'close')),
tasks AS (
  SELECT case_id, task_no, task_no = max(task_no) OVER (PARTITION BY case_id) AS latest,
         min(at) FILTER (WHERE action = 'dispatch') AS dispatched_at,
         min((detail->>'dept_id')::int) FILTER (WHERE action = 'dispatch') AS dept_id,
         bool_or(action = 'return') AS returned,
         bool_or(action = 'check_fail') AS reworked,
         bool_or(action = 'close') AS closed,
         max(id) FILTER (WHERE action = 'handle') AS handle_id,
         max(id) FILTER (WHERE action = 'check_fail') AS fail_id,
         (array_agg(at ORDER BY id DESC) FILTER (WHERE action = 'handle'))[1] AS handled_at,
         (array_agg(detail ORDER BY id DESC) FILTER (WHERE action = 'handle'))[1] AS handle
  FROM steps WHERE task_no > 0 GROUP BY case_id, task_no),
judged AS (
  SELECT k.*, c.grid_code, c.state, c.dept_id AS now_dept, c.paused_at, c.handle_deadline,
         -- handled unless a failed check came after the latest handle (返工 reopens it)
         (k.handle_id IS NOT NULL AND (k.fail_id IS NULL OR k.fail_id < k.handle_id)) AS handled,
         coalesce((k.handle->>'on_time')::boolean, true) AS handle_on_time,
         (k.handle->>'handle_deadline')::timestamptz AS deadline_then
  FROM tasks k JOIN case_file c ON c.id = k.case_id WHERE NOT k.returned),
decided AS (
  SELECT *, CASE
    WHEN handled THEN CASE WHEN handle_on_time THEN handled_at ELSE deadline_then END
    WHEN latest AND now_dept = dept_id AND state = ANY(%(handling)s) AND paused_at IS NULL
         AND handle_deadline <= %(as_of)s THEN handle_deadline END AS decided_at
  FROM judged)
SELECT dept_id, grid_code, count(*) AS tasks,
  count(*) FILTER (WHERE handled) AS handled,
  count(*) FILTER (WHERE handled AND handle_on_time) AS on_time,
  count(*) FILTER (WHERE handled AND NOT handle_on_time) AS late,
  count(*) FILTER (WHERE NOT handled) AS overdue_open,
  count(*) FILTER (WHERE reworked) AS reworked,
  count(*) FILTER (WHERE handled AND handle_on_time AND closed) AS closed_on_time,
  coalesce(sum(extract(epoch FROM handled_at - dispatched_at) / 3600.0) FILTER (WHERE handled), 0)::float AS hours
FROM decided WHERE decided_at >= %(start)s AND decided_at < %(end)s
GROUP BY dept_id, grid_code
"""

# Reports and filings in the period by area; of the filed cases, those closed since, and
# those closed with an on-time final handle.
_AREA_EVENTS_SQL = """
WITH ev AS (
  SELECT t.case_id, t.action FROM case_transition t
  WHERE t.action IN ('report', 'file') AND t.at >= %(start)s AND t.at < %(end)s),
last_handle AS (
  SELECT DISTINCT ON (x.case_id) x.case_id, coalesce((x.detail->>'on_time')::boolean, true) AS on_time
  FROM case_transition x WHERE x.case_id IN (SELECT case_id FROM ev WHERE action = 'file') AND x.action = 'handle'
  ORDER BY x.case_id, x.id DESC)
SELECT c.grid_code,
  count(*) FILTER (WHERE ev.action = 'report') AS reported,
  count(*) FILTER (WHERE ev.action = 'file') AS filed,
  count(*) FILTER (WHERE ev.action = 'file' AND c.closed_at IS NOT NULL) AS closed,
  count(*) FILTER (WHERE ev.action = 'file' AND c.closed_at IS NOT NULL AND coalesce(lh.on_time, true))
    AS closed_on_time
FROM ev JOIN case_file c ON c.id = ev.case_id LEFT JOIN last_handle lh ON lh.case_id = ev.case_id
GROUP BY c.grid_code
"""


def _stage_task_counts(conn: psycopg.Connection, w: Window, flow: CaseFlow, defs: Definitions,
                       spec: RoleSpec) -> dict[int, dict[str, int]]:
    clocked = [key for key, s in flow.states.items() if s.clock]
    rows = conn.execute(_STAGE_TASKS_SQL, w.params(not_steps=defs.not_steps, clocked=clocked)).fetchall()
    out: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for task in spec.stage_tasks:
        for r in rows:
            # done by one of the task's own actions, or still open and assigned to this user
            if r["state"] == task.state and (r["done_action"] in task.done_by or r["done_action"] is None):
                out[r["user_id"]][f"应{task.name}数"] += r["tasks"]
                out[r["user_id"]][f"按时{task.name}数"] += r["on_time"]
    return out


def _user_counts(conn: psycopg.Connection, w: Window, flow: CaseFlow, defs: Definitions,
                 spec: RoleSpec) -> dict[int, dict[str, float]]:
    counts: dict[int, dict[str, float]] = defaultdict(dict)
    events = conn.execute(_ACTOR_EVENTS_SQL, w.params(
        intake=defs.intake_actions, actions=["report", "file", "dispatch", *defs.intake_actions])).fetchall()
    names = {"监督员": {"上报数": "reports", "有效上报数": "valid_reports"},
             "受理员": {"受理数": "intake"},
             "值班长": {"立案数": "filed", "作废数": "voided"},
             "派遣员": {"派遣数": "dispatched", "返工数": "returned"}}[spec.role]
    for r in events:
        counts[r["user_id"]].update({name: r[column] for name, column in names.items()})
    if spec.role == "监督员":
        for r in conn.execute(_INSPECTOR_AREA_SQL, w.params(missed=defs.missed_sources)).fetchall():
            counts[r["user_id"]].update({"立案数": r["filed"], "漏报数": r["missed"]})
    for user_id, task_counts in _stage_task_counts(conn, w, flow, defs, spec).items():
        counts[user_id].update(task_counts)
    return counts


def _handling_rows(conn: psycopg.Connection, w: Window, flow: CaseFlow) -> list[dict]:
    handling = [key for key, s in flow.states.items() if s.handling and not s.paused]
    return conn.execute(_HANDLING_SQL, w.params(handling=handling)).fetchall()


def _add_handling(target: dict[str, float], r: dict) -> None:
    for name, column in (("应处置数", "tasks"), ("处置数", "handled"), ("按期处置数", "on_time"),
                         ("返工数", "reworked"), ("_hours", "hours")):
        target[name] = target.get(name, 0) + r[column]
    target["_late"] = target.get("_late", 0) + r["late"]
    target["_open"] = target.get("_open", 0) + r["overdue_open"]
    target["_closed_on_time"] = target.get("_closed_on_time", 0) + r["closed_on_time"]


def _average_hours(c: dict[str, float]) -> float | None:
    return round(c["_hours"] / c["处置数"], 2) if c.get("处置数") else None


def _department_counts(conn: psycopg.Connection, w: Window, flow: CaseFlow) -> dict[int, dict[str, float]]:
    raw: dict[int, dict[str, float]] = defaultdict(dict)
    for r in _handling_rows(conn, w, flow):
        _add_handling(raw[r["dept_id"]], r)
    out = {}
    for dept_id, c in raw.items():
        out[dept_id] = {"应处置数": c["应处置数"], "处置数": c["处置数"], "按期处置数": c["按期处置数"],
                        "超期处置数": c["_late"], "超期未处置数": c["_open"], "返工数": c["返工数"],
                        "应结案数": c["应处置数"], "按期结案数": c["_closed_on_time"], HOURS: _average_hours(c)}
    return out


def _area_counts(conn: psycopg.Connection, w: Window, flow: CaseFlow, level: int) -> dict[str, dict[str, float]]:
    raw: dict[str, dict[str, float]] = defaultdict(dict)
    for r in _handling_rows(conn, w, flow):
        _add_handling(raw[r["grid_code"][:level]], r)
    for r in conn.execute(_AREA_EVENTS_SQL, w.params()).fetchall():
        c = raw[r["grid_code"][:level]]
        for name, column in (("上报数", "reported"), ("立案数", "filed"), ("结案数", "closed"),
                             ("按期结案数", "closed_on_time")):
            c[name] = c.get(name, 0) + r[column]
    out = {}
    for code, c in raw.items():
        out[code] = {"上报数": c.get("上报数", 0), "立案数": c.get("立案数", 0), "结案数": c.get("结案数", 0),
                     "按期结案数": c.get("按期结案数", 0), "应处置数": c.get("应处置数", 0),
                     "处置数": c.get("处置数", 0), "按期处置数": c.get("按期处置数", 0),
                     "超期数": c.get("_late", 0) + c.get("_open", 0), "返工数": c.get("返工数", 0),
                     HOURS: _average_hours(c)}
    return out


def _subjects(conn: psycopg.Connection, subject: Subject) -> list[dict]:
    """Everyone who could be evaluated: id, code (shown), name, and whether still active."""
    if subject.kind == "user":
        return conn.execute("SELECT id, username AS code, display_name AS name, active FROM app_user"
                            " WHERE role = %s ORDER BY id", (subject.user_role,)).fetchall()
    if subject.kind == "department":
        return conn.execute("SELECT id, id::text AS code, name, true AS active FROM department ORDER BY id").fetchall()
    table = {9: "street", 12: "community", 15: "grid"}[subject.level]
    return conn.execute(f"SELECT code AS id, code, coalesce(name, code) AS name, true AS active FROM {table}"
                        " ORDER BY code").fetchall()


# ================================================================ evaluation
@dataclass
class Evaluation:
    subject: str
    role: str
    start: dt.datetime
    end: dt.datetime
    columns: list[str]                 # indicator names in display order
    formulas: dict[str, str]           # name → formula text (score included)
    rows: list[dict]                   # id, code, name, indicators, score, grade, rank

    def as_json(self) -> dict:
        return {"subject": self.subject, "role": self.role, "start": self.start.isoformat(),
                "end": self.end.isoformat(),
                "columns": [{"name": c, "percent": is_rate(c)} for c in self.columns],
                "formulas": self.formulas, "rows": self.rows}


def is_rate(name: str) -> bool:
    """Rates (…率) are fractions shown as percentages."""
    return name.endswith("率")


def _round(name: str, value: float | None) -> float | int | None:
    if value is None:
        return None
    if is_rate(name) or name.endswith("分值"):
        return round(value, 4)
    if float(value).is_integer():
        return int(value)
    return round(value, 2)


def _indicators(spec: RoleSpec, counts: dict[str, float], best: dict[str, float]) -> dict[str, float | None]:
    values: dict[str, float | None] = {name: counts.get(name, 0) for name in spec.counts}
    if HOURS in values:
        values[HOURS] = counts.get(HOURS)
    for name, source in spec.normalise.items():
        values[name] = values[source] / best[source] if best.get(source) else None
    for name, formula in spec.formulas.items():
        values[name] = formula.evaluate(values)
    return values


def _scaled(raw: float | None, scale: float) -> float | None:
    """The score on 0–scale, rounded as shown (the grade is taken from what is shown)."""
    return None if raw is None else round(min(max(raw * scale, 0.0), scale), 2)


def _rank(rows: list[dict]) -> None:
    """Best first, equal scores share a rank (1, 1, 3); rows without a score last, unranked."""
    rows.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0), str(r["code"])))
    previous, rank = None, None
    for n, r in enumerate(rows, start=1):
        if r["score"] is not None and r["score"] != previous:
            previous, rank = r["score"], n
        r["rank"] = rank if r["score"] is not None else None


def evaluate(conn: psycopg.Connection, subject: str, start: dt.datetime, end: dt.datetime, *,
             as_of: dt.datetime | None = None, flow: CaseFlow | None = None,
             definitions: Definitions | None = None) -> Evaluation:
    """Indicators, score and grade of every subject of one kind over [start, end), best
    first; subjects without a score (nothing to judge) last."""
    if subject not in SUBJECTS:
        raise Invalid(f"unknown evaluation subject {subject!r}; use one of {', '.join(SUBJECTS)}")
    if start.tzinfo is None or end.tzinfo is None:
        raise Invalid("start and end need a time zone")
    if not start < end:
        raise Invalid(f"the period is empty: start {start.date()} is not before end {end.date()}")
    s = SUBJECTS[subject]
    defs = definitions or load_definitions(conn)
    flow = flow or load_flow()
    spec = defs.specs[s.role]
    w = Window(start, end, as_of or dt.datetime.now(dt.timezone.utc))
    if s.kind == "user":
        counts = _user_counts(conn, w, flow, defs, spec)
    elif s.kind == "department":
        counts = _department_counts(conn, w, flow)
    else:
        counts = _area_counts(conn, w, flow, s.level)
    subjects = [x for x in _subjects(conn, s) if x["active"] or any(counts.get(x["id"], {}).values())]
    best = {source: max((counts.get(x["id"], {}).get(source, 0) for x in subjects), default=0)
            for source in spec.normalise.values()}
    rows = []
    for x in subjects:
        values = _indicators(spec, counts.get(x["id"], {}), best)
        score = _scaled(spec.score.score(values), defs.score_scale)
        rows.append({"id": x["id"], "code": x["code"], "name": x["name"],
                     "indicators": {c: _round(c, values[c]) for c in spec.columns},
                     "score": score, "grade": defs.grade(score)})
    _rank(rows)
    formulas = {**{k: f.text for k, f in spec.formulas.items()},
                **{k: f"{v} ÷ 最高{v}" for k, v in spec.normalise.items()}, "score": spec.score.text}
    return Evaluation(subject, s.role, start, end, spec.columns, formulas, rows)


# ================================================================ export
SUBJECT_NAMES = {"inspector": "监督员", "operator": "受理员", "shift_lead": "值班长", "dispatcher": "派遣员",
                 "department": "专业部门", "street": "街道", "community": "社区", "grid": "网格"}


def _header(ev: Evaluation) -> list[str]:
    code = {"user": "账号", "department": "编号", "area": "编码"}[SUBJECTS[ev.subject].kind]
    return ["排名", code, "名称", *[f"{c}(小时)" if c == HOURS else c for c in ev.columns], "得分", "等级"]


def _cells(ev: Evaluation) -> Iterable[list[Any]]:
    for r in ev.rows:
        yield [r["rank"], r["code"], r["name"], *[r["indicators"][c] for c in ev.columns], r["score"], r["grade"]]


def to_csv(ev: Evaluation) -> bytes:
    """UTF-8 with a BOM so Excel reads the Chinese; rates written as percentages."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(_header(ev))
    rate_at = {3 + i for i, c in enumerate(ev.columns) if is_rate(c)}
    for cells in _cells(ev):
        out.writerow(["" if v is None else f"{v * 100:.2f}%" if i in rate_at else v for i, v in enumerate(cells)])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(ev: Evaluation) -> bytes:
    """One sheet: a Chinese header row, numbers as numbers, rates as percentages."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = f"{SUBJECT_NAMES[ev.subject]}综合评价"
    ws.append(_header(ev))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    formats = {3 + i: ("0.00%" if is_rate(c) else "0.00" if c == HOURS or c.endswith("分值") else "0")
               for i, c in enumerate(ev.columns)}
    formats[3 + len(ev.columns)] = "0.00"
    for cells in _cells(ev):
        ws.append(cells)
        for i, fmt in formats.items():
            ws.cell(row=ws.max_row, column=i + 1).number_format = fmt
    for i, title in enumerate(_header(ev), start=1):
        ws.column_dimensions[get_column_letter(i)].width = max(8, len(title) * 2 + 2)
    ws.freeze_panes = "D2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
