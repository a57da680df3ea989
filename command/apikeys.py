"""Open311 API keys: random secrets of which only a SHA-256 hash is stored."""
from __future__ import annotations

import hashlib
import secrets

import psycopg

from gis.db import audit
from gis.errors import Invalid


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(conn: psycopg.Connection, name: str, actor: str) -> str:
    """A new key for a client (e.g. the 12345 platform or a public app); printed once."""
    name = name.strip()
    if not 2 <= len(name) <= 100:
        raise Invalid("give the key a name of 2–100 characters saying who uses it")
    key = "cg_" + secrets.token_urlsafe(32)
    with conn.transaction():
        key_id = conn.execute("INSERT INTO api_key (name, key_hash) VALUES (%s, %s) RETURNING id",
                              (name, key_hash(key))).fetchone()["id"]
        audit(conn, actor=actor, action="apikey.create", entity="api_key", entity_id=str(key_id),
              detail={"name": name})
    return key


def key_owner(conn: psycopg.Connection, key: str | None) -> dict | None:
    """The active key's row, or None."""
    if not key:
        return None
    return conn.execute("SELECT id, name FROM api_key WHERE key_hash = %s AND active", (key_hash(key),)).fetchone()
