"""A tiny migration runner: numbered SQL files, each applied in its own transaction."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 7_100_2026  # advisory lock so two processes never migrate at once


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


class MigrationError(RuntimeError):
    pass


def available(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_case.sql")
        found.append(Migration(int(m.group(1)), m.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


def _ensure_table(conn: psycopg.Connection) -> None:
    conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             checksum   text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())"""
    )


def applied(conn: psycopg.Connection) -> dict[int, dict]:
    """Applied migrations by version (read-only: the app role may ask too)."""
    cur = conn.cursor(row_factory=dict_row)
    with conn.transaction():
        if cur.execute("SELECT to_regclass('schema_migrations') AS t").fetchone()["t"] is None:
            return {}
        rows = cur.execute("SELECT version, name, checksum, applied_at FROM schema_migrations").fetchall()
    return {r["version"]: r for r in rows}


def status(conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> list[tuple[Migration, str]]:
    """Each known migration with 'applied', 'pending' or 'changed' (file edited after applying)."""
    done = applied(conn)
    out = []
    for m in available(directory):
        row = done.get(m.version)
        state = "pending" if row is None else ("applied" if row["checksum"] == m.checksum else "changed")
        out.append((m, state))
    return out


def migrate(conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply pending migrations in order, each file in its own committed transaction, under
    a session advisory lock so two processes never migrate at once. Returns what ran."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.commit()
    was_autocommit = conn.autocommit
    conn.autocommit = True      # so each `transaction()` below is a real, committed transaction
    ran = []
    try:
        with conn.transaction():
            _ensure_table(conn)
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            for m, state in status(conn, directory):
                if state == "changed":
                    raise MigrationError(
                        f"migration {m.path.name} was edited after it was applied; "
                        "add a new numbered migration instead of changing an old one")
                if state == "applied":
                    continue
                try:
                    with conn.transaction():
                        conn.execute(m.path.read_text(encoding="utf-8"))
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (m.version, m.name, m.checksum))
                except psycopg.Error as e:
                    raise MigrationError(f"{m.path.name} failed and was rolled back (earlier files stay applied):"
                                         f" {e.diag.message_primary or e}") from e
                ran.append(m)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    finally:
        conn.autocommit = was_autocommit
    return ran
