"""Cases on the tiny city: a desk, one user of each role, a fixed working Monday; for emergencies,
a crew on duty at every waterlogging post."""
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


# Emergencies: 10:00 in the city, and who holds each post of the waterlogging plan.
EMERGENCY_T0 = dt.datetime(2026, 7, 1, 2, 0, tzinfo=dt.timezone.utc)
WATERLOGGING_POSTS = {"县应急指挥长": "cmdr", "县城管局带班领导": "dutylead", "排水抢险队长": "drainer",
                      "交警大队值班长": "traffic", "县融媒体中心值班员": "media", "消防救援大队值班长": "fire"}


@pytest.fixture
def crew(db, tiny_city):
    """A user on duty at every waterlogging post all day, plus a second commander."""
    users = {}
    for post, username in WATERLOGGING_POSTS.items():
        role = "commander" if username == "cmdr" else "leader" if username == "dutylead" else "dispatcher"
        users[username] = create_user(db, username=username, password=PASSWORD, role=role, actor="test")
        post_id = db.execute("INSERT INTO duty_post (name) VALUES (%s) RETURNING id", (post,)).fetchone()["id"]
        db.execute("INSERT INTO duty_shift (post_id, user_id, starts_at, ends_at) VALUES (%s, %s, %s, %s)",
                   (post_id, users[username].id, EMERGENCY_T0 - dt.timedelta(hours=8),
                    EMERGENCY_T0 + dt.timedelta(hours=16)))
    users["cmdr2"] = create_user(db, username="cmdr2", password=PASSWORD, role="commander", actor="test")
    db.commit()
    return users
