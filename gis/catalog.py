"""The part/event catalog: seed data loaded into the database, edited there afterwards."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import yaml

from gis.db import audit
from gis.errors import Invalid

SEED_CATALOG = Path(__file__).parent / "seed" / "catalog.yaml"


class CatalogError(Invalid):
    pass


def read_catalog(path: Path | None = None) -> dict[str, Any]:
    path = path or SEED_CATALOG
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise CatalogError(f"{path}: cannot read the catalog file ({e.strerror})") from e
    except yaml.YAMLError as e:
        raise CatalogError(f"{path}: not valid YAML: {e}") from e
    for key in ("parts", "events"):
        if not isinstance(doc, dict) or not isinstance(doc.get(key), dict):
            raise CatalogError(f"{path}: the catalog needs a '{key}' section")
    return doc


def load_catalog(conn: psycopg.Connection, doc: dict[str, Any], actor: str = "system") -> dict[str, int]:
    """Upsert the catalog's classes (inside the caller's transaction, with an audit row);
    returns counts."""
    counts = {"part_classes": 0, "event_classes": 0}
    for table, section, extra in (("part", "parts", False), ("event", "events", True)):
        for big_code, big in doc[section].items():
            conn.execute(
                f"INSERT INTO {table}_big_class (code, name) VALUES (%s, %s) "
                "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name",
                (str(big_code), big["name"]))
            for code, cls in (big.get("classes") or {}).items():
                code = str(code)
                if not isinstance(cls, dict) or not cls.get("name"):
                    raise CatalogError(f"{section}.{big_code}.classes.{code}: each class needs a name")
                if code[:2] != str(big_code):
                    raise CatalogError(f"class {code} is filed under big class {big_code}")
                if extra:
                    limit = cls.get("limit") or {}
                    conn.execute(
                        "INSERT INTO event_class (code, big_code, name, std, limit_kind, limit_value)"
                        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (code) DO UPDATE SET"
                        " name = EXCLUDED.name, std = EXCLUDED.std,"
                        " limit_kind = EXCLUDED.limit_kind, limit_value = EXCLUDED.limit_value",
                        (code, str(big_code), cls["name"], bool(cls.get("std")),
                         limit.get("kind"), limit.get("value")))
                else:
                    conn.execute(
                        "INSERT INTO part_class (code, big_code, name, std) VALUES (%s, %s, %s, %s)"
                        " ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, std = EXCLUDED.std",
                        (code, str(big_code), cls["name"], bool(cls.get("std"))))
                counts[f"{table}_classes"] += 1
    conn.execute(
        "INSERT INTO catalog_document (id, body) VALUES (1, %s)"
        " ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body, loaded_at = now()",
        (json.dumps(doc, ensure_ascii=False),))
    audit(conn, actor=actor, action="catalog.load", entity="catalog", detail=counts)
    return counts


def catalog_loaded(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT count(*) AS n FROM part_class").fetchone()
    return (row["n"] if isinstance(row, dict) else row[0]) > 0
