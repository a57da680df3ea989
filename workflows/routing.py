"""Routing suggestion (派遣建议): which department should handle a case.

Order, from the national rule 部件先属主、后属地；事件先属地、后属主:
1. a routing rule for this area (street/community…) and class — the most specific wins;
2. parts: the part's owner (主管部门), else its maintainer; events: the area's department
   (属地, longest area code that has one);
3. a routing rule for the class anywhere in the jurisdiction;
4. none: the dispatcher chooses."""
from __future__ import annotations

import psycopg


def _rule(conn: psycopg.Connection, kind: str, cls: str, grid_code: str, *, with_area: bool) -> int | None:
    row = conn.execute(
        "SELECT dept_id FROM routing_rule WHERE kind = %(kind)s"
        " AND (class_code IS NULL OR class_code = left(%(cls)s, length(class_code)))"
        f" AND {'area_code IS NOT NULL AND %(grid)s LIKE area_code || %(pct)s' if with_area else 'area_code IS NULL'}"
        " ORDER BY length(coalesce(area_code, '')) DESC, length(coalesce(class_code, '')) DESC LIMIT 1",
        {"kind": kind, "cls": cls, "grid": grid_code, "pct": "%"}).fetchone()
    return row["dept_id"] if row else None


def _principle(conn: psycopg.Connection, case: dict) -> int | None:
    if case["kind"] == "part" and case.get("part_id"):
        row = conn.execute("SELECT coalesce(dept_owner_id, dept_maintainer_id) AS d FROM part WHERE id = %s",
                           (case["part_id"],)).fetchone()
        if row and row["d"]:
            return row["d"]
    row = conn.execute("SELECT dept_id FROM area_department WHERE %s LIKE area_code || '%%'"
                       " ORDER BY length(area_code) DESC LIMIT 1", (case["grid_code"],)).fetchone()
    return row["dept_id"] if row else None


def suggest(conn: psycopg.Connection, case: dict) -> int | None:
    cls = case["event_class"] or case["part_class"]
    return (_rule(conn, case["kind"], cls, case["grid_code"], with_area=True)
            or _principle(conn, case)
            or _rule(conn, case["kind"], cls, case["grid_code"], with_area=False))
