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
            assert conn.execute("SELECT actor FROM audit_log WHERE action = 'test'").fetchone()["actor"] == "t"
    finally:
        pool.close()


def test_owner_cannot_rewrite_audit_either(db):
    db.execute("INSERT INTO audit_log (actor, action, entity) VALUES ('t', 'test', 'x')")
    db.commit()
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        db.execute("DELETE FROM audit_log")


def test_a_failing_file_rolls_back_alone(db, tmp_path):
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE first_ok (id int);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE second_half (id int); SELECT no_such_function();")
    db.execute("DROP TABLE schema_migrations")
    db.commit()
    with pytest.raises(migrate.MigrationError, match="0002_broken.sql failed and was rolled back"):
        migrate.migrate(db, tmp_path)
    # The lock is released and nothing is left open: another session can migrate at once.
    assert db.info.transaction_status.name == "IDLE"
    assert [m.name for m, state in migrate.status(db, tmp_path) if state == "applied"] == ["first"]
    assert db.execute("SELECT to_regclass('first_ok') AS t").fetchone()["t"] == "first_ok"
    assert db.execute("SELECT to_regclass('second_half') AS t").fetchone()["t"] is None


def test_migrate_leaves_no_open_transaction(db):
    migrate.migrate(db)
    assert db.info.transaction_status.name == "IDLE"


def test_the_app_role_has_exactly_the_rights_later_migrations_took_away(db):
    # A blanket GRANT in a later migration would quietly hand these back.
    refused = [("audit_log", "UPDATE"), ("audit_log", "DELETE"), ("audit_log", "TRUNCATE"),
               ("case_transition", "UPDATE"), ("case_transition", "DELETE"), ("schema_migrations", "INSERT"),
               ("grid_version", "DELETE"), ("grid_version", "INSERT")]
    for table, right in refused:
        assert not db.execute("SELECT has_table_privilege('citygrid_app', %s, %s) AS ok",
                              (table, right)).fetchone()["ok"], (table, right)
    for table in ("position", "dead_letter", "unit", "unit_alarm", "unit_state"):
        assert db.execute("SELECT has_table_privilege('citygrid_app', %s, 'INSERT') AS ok",
                          (table,)).fetchone()["ok"], table
