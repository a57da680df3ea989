"""Cases on the tiny city: a desk, one user of each role, a fixed working Monday."""
from __future__ import annotations

import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from command.auth import create_user
from tests.conftest import PASSWORD
from workflows.cases import CaseDesk, NewReport, report
from workflows.photos import store_photo

CST = ZoneInfo("Asia/Shanghai")
MONDAY_10AM = dt.datetime(2026, 3, 2, 10, 0, tzinfo=CST)     # a working Monday


@pytest.fixture(scope="session")
def desk() -> CaseDesk:
    return CaseDesk.default()


@pytest.fixture
def people(db, tiny_city):
    """One user per role; the inspector patrols community 430223001001, and the area's
    street office (属地) is the city-management bureau."""
    city = db.execute("SELECT id FROM department WHERE name = %s", (tiny_city["city_dept"],)).fetchone()["id"]
    db.execute("INSERT INTO area_department (area_code, dept_id) VALUES ('430223001', %s)", (city,))
    db.commit()
    made = {}
    for role, extra in (("operator", {}), ("shift_lead", {}), ("dispatcher", {}),
                        ("department", {"dept": tiny_city["city_dept"]}),
                        ("inspector", {"areas": ["430223001001"]}), ("leader", {})):
        made[role] = create_user(db, username=role, password=PASSWORD, role=role, actor="test", **extra)
    made["water_dept"] = create_user(db, username="water", password=PASSWORD, role="department",
                                     dept=tiny_city["water_dept"], actor="test")
    made["city_dept_id"] = city
    return made


def jpeg(colour=(200, 50, 50), exif_gps: bool = False) -> bytes:
    img = Image.new("RGB", (640, 480), colour)
    buf = io.BytesIO()
    if exif_gps:
        exif = Image.Exif()
        exif[0x010F] = "TestCam"          # Make
        exif[0x8825] = {1: "N", 2: (27.0, 0.0, 1.8)}   # GPSInfo
        img.save(buf, "JPEG", exif=exif)
    else:
        img.save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def photo(tmp_path):
    def make(kind: str = "after", colour=(200, 50, 50)):
        return store_photo(tmp_path / "data", jpeg(colour), kind)
    return make


@pytest.fixture
def new_case(db, desk, people):
    """new_case(**fields) → an event case 0102 (暴露垃圾) reported by the inspector at 10:00."""
    def make(source: str = "inspector", lon: float = 113.3405, lat: float = 27.0005, now=MONDAY_10AM, **fields):
        actor = people["inspector"] if source == "inspector" else None
        r = NewReport(source=source, kind=fields.pop("kind", "event"), class_code=fields.pop("class_code", "0102"),
                      lon=lon, lat=lat, **fields)
        return report(db, desk, r, actor=actor, now=now)
    return make
