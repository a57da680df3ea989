"""Which patrol units a user may see: the command center's roles see every unit, a
department its own units, an inspector only their own unit (the one bound to their login)."""
from __future__ import annotations

import psycopg

from command.auth import User
from gis.errors import NotFound

_WHOLE_JURISDICTION = frozenset({"admin", "leader", "commander", "shift_lead", "operator", "dispatcher"})


def unit_filter(user: User, alias: str = "u") -> tuple[str, tuple]:
    """A SQL condition on the unit table (aliased `alias`) and its parameters."""
    if user.role in _WHOLE_JURISDICTION:
        return "true", ()
    if user.role == "department":
        return f"{alias}.dept_id = %s", (user.dept_id,)
    return f"{alias}.user_id = %s", (user.id,)


def visible_unit(conn: psycopg.Connection, user: User, unit_id: int) -> dict:
    """The unit row, or NotFound when it does not exist or this user may not see it."""
    where, params = unit_filter(user)
    row = conn.execute(f"SELECT u.id, u.name, u.kind, u.dept_id, u.phone, u.user_id, u.leader_user_id, u.active"
                       f" FROM unit u WHERE u.id = %s AND {where}", (unit_id, *params)).fetchone()
    if row is None:
        raise NotFound(f"unit {unit_id} does not exist or is not in your department")
    return row
