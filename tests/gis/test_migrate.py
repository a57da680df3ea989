import psycopg
import pytest

from gis import migrate
from gis.config import Settings
from gis.db import open_pool


def test_template_is_fully_migrated(db):
    states = {m.name: state for m, state in migrate.status(db)}
    assert states and set(states.values()) == {"applied"}
    assert db.execute("SELECT postgis_version()").fetchone()


def test_migrate_twice_applies_nothing(db):
    assert migrate.migrate(db) == []


def test_edited_migration_is_refused(db):
    db.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
    db.commit()
    with pytest.raises(migrate.MigrationError, match="edited after it was applied"):
        migrate.migrate(db)


def test_app_role_cannot_rewrite_audit(settings: Settings):
    pool = open_pool(settings)
    try:
        with pool.connection() as conn:
            conn.execute("INSERT INTO audit_log (actor, action, entity) VALUES ('t', 'test', 'x')")
            conn.commit()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("UPDATE audit_log SET actor = 'forged'")
            conn.rollback()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM audit_log")
            conn.rollback()
            assert conn.execute("SELECT actor FROM audit_log").fetchone()["actor"] == "t"
    finally:
        pool.close()


def test_owner_cannot_rewrite_audit_either(db):
    db.execute("INSERT INTO audit_log (actor, action, entity) VALUES ('t', 'test', 'x')")
    db.commit()
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        db.execute("DELETE FROM audit_log")
