"""Database connections: one pool per process, created by the caller, never at import.

Connections are in autocommit mode: a change that must be atomic is written inside
`with conn.transaction():`, which is then a real transaction that commits at the end of the
block. (Without autocommit, a plain read would open a transaction silently and turn every
later `transaction()` block into a savepoint that never commits.)"""
from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from gis.config import Settings
from gis.errors import Invalid


def prepare_app_session(conn: psycopg.Connection, role: str | None) -> None:
    """Set a connection up the way the server uses it (the pool does this to each one)."""
    if role:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    # Many short queries from many requests at once on few cores: parallel workers and
    # JIT compilation cost more than they save here (measured in bench/bench_cases.py).
    conn.execute("SET max_parallel_workers_per_gather = 0")
    conn.execute("SET jit = off")
    conn.commit()


def _as_app_role(role: str | None):
    return lambda conn: prepare_app_session(conn, role)


def open_pool(settings: Settings, *, min_size: int = 1, max_size: int | None = None) -> ConnectionPool:
    """A pool whose connections act as the application role (no UPDATE/DELETE on audit)."""
    pool = ConnectionPool(
        settings.database_url,
        min_size=min_size,
        max_size=max_size or settings.db_pool_size,
        kwargs={"row_factory": dict_row, "application_name": "citygrid", "autocommit": True},
        configure=_as_app_role(settings.db_app_role),
        open=False,
    )
    pool.open(wait=True, timeout=15)
    return pool


def connect(url: str, **kwargs: Any) -> psycopg.Connection:
    """A single connection as the owner (migrations, imports from the CLI, tests)."""
    return psycopg.connect(url, row_factory=dict_row, autocommit=True, **kwargs)


def audit(conn: psycopg.Connection, *, actor: str, action: str, entity: str,
          entity_id: str | None = None, actor_id: int | None = None,
          detail: dict[str, Any] | None = None) -> None:
    """Append one audit row inside the caller's transaction."""
    conn.execute(
        "INSERT INTO audit_log (actor_id, actor, action, entity, entity_id, detail)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (actor_id, actor, action, entity, entity_id, json.dumps(detail or {}, ensure_ascii=False)),
    )


def department_id(conn: psycopg.Connection, name: str | None) -> int | None:
    """The id of a department a person named (None when none was named)."""
    if not name:
        return None
    found = conn.execute("SELECT id FROM department WHERE name = %s", (name,)).fetchone()
    if found is None:
        raise Invalid(f"department {name!r} does not exist; known departments are listed at /api/departments")
    return found["id"]
