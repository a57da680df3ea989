from pathlib import Path

import pytest

from gis import catalog

SHARED = Path(__file__).resolve().parents[3] / "shared" / "standards" / "urban-management-catalog.yaml"


@pytest.mark.skipif(not SHARED.exists(), reason="the shared standards are not beside this checkout")
def test_seed_catalog_matches_the_shared_standard():
    # The seed is our versioned copy of the shared catalog; a change there must be taken in here.
    assert catalog.SEED_CATALOG.read_bytes() == SHARED.read_bytes()


def test_catalog_rows_in_the_database(db):
    assert db.execute("SELECT name, std FROM part_class WHERE code = '0101'").fetchone() == \
        {"name": "上水井盖", "std": True}
    assert db.execute("SELECT limit_kind, limit_value FROM event_class WHERE code = '0102'").fetchone() == \
        {"limit_kind": "工作时", "limit_value": 4}
    body = db.execute("SELECT body FROM catalog_document").fetchone()["body"]
    assert body["stage_limits"]["核查"] == {"kind": "工作时", "minutes": 60}


def test_reloading_updates_in_place_with_an_audit_row(db):
    doc = catalog.read_catalog()
    doc["events"]["01"]["classes"]["0102"]["limit"] = {"kind": "工作时", "value": 3}
    with db.transaction():
        counts = catalog.load_catalog(db, doc, actor="cli:tester")
    assert db.execute("SELECT actor, detail FROM audit_log WHERE action = 'catalog.load' ORDER BY id DESC"
                      " LIMIT 1").fetchone() == {"actor": "cli:tester", "detail": counts}
    assert counts["part_classes"] == db.execute("SELECT count(*) AS n FROM part_class").fetchone()["n"]
    assert db.execute("SELECT limit_value FROM event_class WHERE code = '0102'").fetchone()["limit_value"] == 3


def test_bad_catalog_files_are_refused(tmp_path):
    broken = tmp_path / "c.yaml"
    broken.write_text("parts: [unclosed")
    with pytest.raises(catalog.CatalogError, match="not valid YAML"):
        catalog.read_catalog(broken)
    broken.write_text("events: {}\n")
    with pytest.raises(catalog.CatalogError, match="'parts' section"):
        catalog.read_catalog(broken)
    with pytest.raises(catalog.CatalogError, match="cannot read the catalog file"):
        catalog.read_catalog(tmp_path / "missing.yaml")


def test_class_filed_under_the_wrong_big_class_is_refused(db):
    doc = catalog.read_catalog()
    doc["parts"]["02"]["classes"]["0199"] = {"name": "错位"}
    with pytest.raises(catalog.CatalogError, match="0199 is filed under big class 02"):
        with db.transaction():
            catalog.load_catalog(db, doc)
