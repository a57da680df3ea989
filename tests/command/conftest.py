"""An app wired to this test's own database, and a tiny hand-made city in it."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from command.app import create_app
from command.auth import create_user
from gis.db import open_pool

PASSWORD = "correct-horse-battery"
COUNTY = "430223"
# Two communities of two 0.001° squares each (~100 m × 110 m), side by side.
GRID_CELLS = {
    "430223001001001": (113.340, 27.000), "430223001001002": (113.341, 27.000),
    "430223001002001": (113.342, 27.000), "430223001002002": (113.343, 27.000),
}


def _square(x: float, y: float) -> str:
    return f"MULTIPOLYGON((({x} {y},{x + .001} {y},{x + .001} {y + .001},{x} {y + .001},{x} {y})))"


@pytest.fixture
def tiny_city(db):
    with db.transaction():
        db.execute("INSERT INTO county (code, name) VALUES (%s, '攸县')", (COUNTY,))
        db.execute("INSERT INTO street (code, county_code, name, kind) VALUES ('430223001', %s, '联星街道', '街道')",
                   (COUNTY,))
        for community, name in (("430223001001", "东正社区"), ("430223001002", "西正社区")):
            db.execute("INSERT INTO community (code, street_code, name) VALUES (%s, '430223001', %s)",
                       (community, name))
        for code, (x, y) in GRID_CELLS.items():
            db.execute("INSERT INTO grid (code, community_code, name, area_m2, geom)"
                       " VALUES (%s, %s, %s, ST_Area(ST_GeomFromText(%s, 4326)::geography), ST_GeomFromText(%s, 4326))",
                       (code, code[:12], f"第{code[-3:]}网格", _square(x, y), _square(x, y)))
        for name in ("攸县自来水公司", "县城市管理和综合执法局"):
            db.execute("INSERT INTO department (name) VALUES (%s)", (name,))
        water, city = (r["id"] for r in db.execute("SELECT id FROM department ORDER BY id").fetchall())
        parts = [("4302230101000001", "0101", "上水井盖0001", 113.3405, 27.0005, water),
                 ("4302230114000001", "0114", "路灯0001", 113.3415, 27.0005, city),
                 ("4302230114000002", "0114", "路灯0002", 113.3425, 27.0005, city)]
        for pid, cls, name, x, y, dept in parts:
            db.execute("INSERT INTO part (id, class_code, name, grid_code, geom, location, dept_owner_id,"
                       " dept_maintainer_id) SELECT %s, %s, %s, g.code, p, p, %s, %s FROM grid g,"
                       " ST_SetSRID(ST_MakePoint(%s, %s), 4326) p WHERE ST_Intersects(g.geom, p)",
                       (pid, cls, name, dept, dept, x, y))
    return {"water_dept": "攸县自来水公司", "city_dept": "县城市管理和综合执法局"}


@pytest.fixture
def client(settings, tiny_city):
    pool = open_pool(settings)
    with TestClient(create_app(settings, pool)) as c:
        yield c
    pool.close()


@pytest.fixture
def login(client, db):
    """login(role, **user fields) → auth headers for a fresh user of that role."""
    made = {}

    def make(role: str, username: str | None = None, **fields) -> dict:
        username = username or f"{role}{len(made)}"
        create_user(db, username=username, password=PASSWORD, role=role, actor="test", **fields)
        r = client.post("/api/auth/token", data={"username": username, "password": PASSWORD})
        assert r.status_code == 200, r.text
        made[username] = r.json()["access_token"]
        return {"Authorization": f"Bearer {made[username]}"}

    return make
