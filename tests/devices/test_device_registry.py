"""The device registry against the real database: devices on parts or at places inside the
city, broker hashes mosquitto accepts, and CSV imports that are all or nothing."""
from __future__ import annotations

import subprocess
from base64 import b64decode

import pytest

from devices.csv_rows import ImportRefused
from devices.device_import import import_devices
from devices.device_registry import NewDevice, add_device, broker_hash
from gis.errors import Conflict, Invalid

COVER = "4302230101000001"          # 上水井盖 in the tiny city
LIGHT = "4302230114000001"          # 路灯


def test_a_device_on_a_part_takes_its_place_and_grid(db, tiny_city):
    row = add_device(db, NewDevice("MC-0001", "manhole_cover", part_id=COVER, dept=tiny_city["water_dept"],
                                   password="cover-pass-1", meta={"model": "JG-3"}), actor="test")
    assert (row["lon"], row["lat"], row["grid_code"], row["username"]) == (113.3405, 27.0005, "430223001001001",
                                                                          "MC-0001")
    assert row["has_password"] and row["meta"] == {"model": "JG-3"}
    stored = db.execute("SELECT password_hash FROM device WHERE id = 'MC-0001'").fetchone()["password_hash"]
    assert stored.startswith("$7$101$") and "cover-pass-1" not in stored
    assert db.execute("SELECT action FROM audit_log WHERE entity = 'device' AND entity_id = 'MC-0001'"
                      ).fetchone()["action"] == "device.add"


@pytest.mark.parametrize("device, message", [
    (NewDevice("MC 1", "manhole_cover", 113.3405, 27.0005), "1-64 letters"),
    (NewDevice("MC-1", "toaster", 113.3405, 27.0005), "type 'toaster' is not in the catalog"),
    (NewDevice("MC-1", "manhole_cover", 27.0005, 113.3405), "not a WGS84"),
    (NewDevice("MC-1", "manhole_cover", 113.5, 27.5), "outside every unit grid"),
    (NewDevice("MC-1", "manhole_cover", part_id=LIGHT), "cannot sit on part 4302230114000001 of class 0114"),
    (NewDevice("MC-1", "manhole_cover", part_id="4302230101999999"), "does not exist"),
    (NewDevice("MC-1", "manhole_cover"), "needs a location"),
    (NewDevice("MC-1", "manhole_cover", 113.3405, None), "both lon and lat"),
    (NewDevice("MC-1", "manhole_cover", 113.3405, 27.0005, password="short"), "8-200 characters"),
    (NewDevice("MC-1", "manhole_cover", 113.3405, 27.0005, dept="无此部门"), "does not exist"),
])
def test_bad_devices_are_refused_with_the_reason_and_nothing_written(db, tiny_city, device, message):
    with pytest.raises(Invalid, match=message):
        add_device(db, device, actor="test")
    assert db.execute("SELECT count(*) AS n FROM device").fetchone()["n"] == 0


def test_the_same_id_or_login_twice_is_a_conflict(db, tiny_city):
    add_device(db, NewDevice("WL-1", "waterlogging_gauge", 113.3405, 27.0005), actor="test")
    with pytest.raises(Conflict, match="id is already registered"):
        add_device(db, NewDevice("WL-1", "waterlogging_gauge", 113.3415, 27.0005), actor="test")
    with pytest.raises(Conflict, match="username is already registered"):
        add_device(db, NewDevice("WL-2", "waterlogging_gauge", 113.3415, 27.0005, username="WL-1"), actor="test")


def test_the_broker_hash_is_the_one_mosquitto_passwd_makes(tmp_path):
    passwords = tmp_path / "passwd"
    passwords.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "dev1", "s3cret-pass"], check=True)
    made = passwords.read_text().strip().split(":", 1)[1]
    salt = b64decode(made.split("$")[3])
    assert broker_hash("s3cret-pass", salt) == made
    assert broker_hash("other-pass", salt) != made


CSV = """device_id,type,lon,lat,part_id,dept,password,model
MC-0001,manhole_cover,,,4302230101000001,攸县自来水公司,cover-pass-1,JG-3
WL-0001,waterlogging_gauge,113.3425,27.0005,,,,
SL-0001,street_light,,,4302230114000001,县城市管理和综合执法局,,
"""


def test_a_csv_import_adds_every_row_in_one_go(db, tiny_city):
    assert import_devices(db, CSV, actor="test", source="devices.csv") == 3
    rows = db.execute("SELECT id, type_code, grid_code, meta FROM device ORDER BY id").fetchall()
    assert [(r["id"], r["grid_code"]) for r in rows] == [("MC-0001", "430223001001001"), ("SL-0001", "430223001001002"),
                                                         ("WL-0001", "430223001002001")]
    assert rows[0]["meta"] == {"model": "JG-3"}


def test_a_csv_with_bad_rows_names_each_line_and_writes_nothing(db, tiny_city):
    bad = CSV + ("WL-0002,waterlogging_gauge,abc,27.0005,,,,\n"
                 "WL-0003,waterlogging_gauge,113.9,27.9,,,,\n"
                 "MC-0001,manhole_cover,113.3405,27.0005,,,,\n")
    with pytest.raises(ImportRefused) as refused:
        import_devices(db, bad, actor="test", source="devices.csv")
    assert [line for line, _ in refused.value.problems] == [5, 7]       # shape first: bad number, id twice
    assert "lon 'abc' is not a number" in refused.value.problems[0][1]
    with pytest.raises(ImportRefused) as refused:                     # then the database's checks, every row
        import_devices(db, CSV + "WL-0003,waterlogging_gauge,113.9,27.9,,,,\nSL-0002,street_light,,,"
                           "4302230101000001,,,\n", actor="test", source="devices.csv")
    assert [line for line, _ in refused.value.problems] == [5, 6]
    assert db.execute("SELECT count(*) AS n FROM device").fetchone()["n"] == 0
