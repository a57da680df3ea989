"""Routing suggestion (派遣建议): which department should handle a case.

Order, from the national rule 部件先属主、后属地；事件先属地、后属主:
1. a routing rule for this area (street/community…) and class — the most specific wins;
2. parts: the part's owner (主管部门), else its maintainer; events: the area's department
   (属地, longest area code that has one);
3. a routing rule for the class anywhere in the jurisdiction;
4. none: the dispatcher chooses."""
from __future__ import annotations

from typing import Any

import psycopg

from gis.codes import area_level
from gis.db import audit
from gis.errors import Invalid


# One statement; coalesce() evaluates the lookups in order and stops at the first answer.
_SUGGEST_SQL = (
    "SELECT coalesce("
    " (SELECT dept_id FROM routing_rule WHERE kind = %(kind)s AND area_code IS NOT NULL"
    "   AND (class_code IS NULL OR class_code = left(%(cls)s, length(class_code)))"
    "   AND %(grid)s LIKE area_code || '%%'"
    "   ORDER BY length(area_code) DESC, length(coalesce(class_code, '')) DESC LIMIT 1),"
    " (SELECT coalesce(dept_owner_id, dept_maintainer_id) FROM part"
    "   WHERE %(kind)s = 'part' AND id = %(part)s::bpchar),"
    " (SELECT dept_id FROM area_department WHERE %(grid)s LIKE area_code || '%%'"
    "   ORDER BY length(area_code) DESC LIMIT 1),"
    " (SELECT dept_id FROM routing_rule WHERE kind = %(kind)s AND area_code IS NULL"
    "   AND (class_code IS NULL OR class_code = left(%(cls)s, length(class_code)))"
    "   ORDER BY length(coalesce(class_code, '')) DESC LIMIT 1)) AS dept_id"
)


def suggest(conn: psycopg.Connection, case: dict) -> int | None:
    """`case` needs kind, event_class/part_class, part_id and grid_code."""
    return conn.execute(_SUGGEST_SQL, {"kind": case["kind"], "cls": case["event_class"] or case["part_class"],
                                       "grid": case["grid_code"], "part": case.get("part_id")}).fetchone()["dept_id"]


def load_routing(conn: psycopg.Connection, doc: dict[str, Any], actor: str) -> dict[str, int]:
    """Replace the routing matrix (area departments and rules) from a document, in one
    transaction with an audit row. Every problem is reported at once, naming the entry."""
    problems: list[str] = []

    def dept_id(name: Any, where: str) -> int | None:
        row = conn.execute("SELECT id FROM department WHERE name = %s", (name,)).fetchone()
        if row is None:
            problems.append(f"{where}: department {name!r} does not exist")
        return row["id"] if row else None

    def check_area(code: Any, where: str) -> None:
        try:
            area_level(str(code))
        except Invalid as e:
            problems.append(f"{where}: {e}")

    areas = []
    for code, name in (doc.get("area_departments") or {}).items():
        where = f"area_departments.{code}"
        check_area(code, where)
        areas.append((str(code), dept_id(name, where)))
    rules = []
    for n, rule in enumerate(doc.get("rules") or [], start=1):
        where = f"rules[{n}]"
        kind, cls, area = rule.get("kind"), rule.get("class"), rule.get("area")
        if kind not in ("event", "part"):
            problems.append(f"{where}: kind must be event or part")
        if cls is not None:
            cls = str(cls)
            table = "event_class" if kind == "event" else "part_class"
            if not conn.execute(f"SELECT 1 FROM {table} WHERE left(code, length(%s)) = %s LIMIT 1",
                                (cls, cls)).fetchone():
                problems.append(f"{where}: class {cls!r} is not in the catalog")
        if area is not None:
            check_area(area, where)
        rules.append((kind, cls, None if area is None else str(area), dept_id(rule.get("dept"), where),
                      rule.get("note")))
    seen: set[tuple] = set()
    for n, (kind, cls, area, _, _) in enumerate(rules, start=1):
        if (kind, cls, area) in seen:
            problems.append(f"rules[{n}]: a rule for ({kind}, {cls or 'any class'}, {area or 'everywhere'})"
                            " is given twice")
        seen.add((kind, cls, area))
    if problems:
        raise Invalid("routing matrix refused:\n" + "\n".join(problems))
    with conn.transaction():
        conn.execute("DELETE FROM area_department")
        conn.execute("DELETE FROM routing_rule")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO area_department (area_code, dept_id) VALUES (%s, %s)", areas)
            cur.executemany("INSERT INTO routing_rule (kind, class_code, area_code, dept_id, note)"
                            " VALUES (%s, %s, %s, %s, %s)", rules)
        counts = {"area_departments": len(areas), "rules": len(rules)}
        audit(conn, actor=actor, action="routing.load", entity="routing", detail=counts)
    return counts
