"""Units from CSV, all or nothing, and the `citygrid units import|shift` commands."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from command.auth import create_user
from command.cli import app
from devices.registry import add_unit
from devices.unit_import import ImportRefused, import_units
from tests.conftest import PASSWORD, TEST_SECRET

GOOD = '''name,kind,dept,phone,user,devices
监督员张三,inspector,县城市管理和综合执法局,13800000001,zhangsan,owntracks:zhangsan/phone;osmand:860000001
执法车 湘B·12345,vehicle,县城市管理和综合执法局,,,osmand:860000002
"Team ""A""",team,,,,
'''


@pytest.fixture
def inspector(db, tiny_city):
    return create_user(db, username="zhangsan", password=PASSWORD, role="inspector", areas=["430223001001"],
                       actor="test")


def units(db):
    return db.execute("SELECT u.id, u.name, u.kind, u.phone, d.name AS dept, au.username,"
                      " coalesce(array_agg(x.device ORDER BY x.device) FILTER (WHERE x.device IS NOT NULL), '{}')"
                      " AS devices FROM unit u LEFT JOIN department d ON d.id = u.dept_id"
                      " LEFT JOIN app_user au ON au.id = u.user_id LEFT JOIN unit_device x ON x.unit_id = u.id"
                      " GROUP BY u.id, d.name, au.username ORDER BY u.id").fetchall()


def test_a_good_file_adds_every_unit_with_audit_rows(db, inspector):
    ids = import_units(db, GOOD, actor="test", source="units.csv")
    got = units(db)
    assert [u["id"] for u in got] == ids and len(ids) == 3
    assert got[0] == {"id": ids[0], "name": "监督员张三", "kind": "inspector", "phone": "13800000001",
                      "dept": "县城市管理和综合执法局", "username": "zhangsan",
                      "devices": ["osmand:860000001", "owntracks:zhangsan/phone"]}
    assert got[1]["name"] == "执法车 湘B·12345" and got[1]["devices"] == ["osmand:860000002"]
    assert got[2]["name"] == 'Team "A"' and got[2]["dept"] is None and got[2]["devices"] == []
    actions = [r["action"] for r in db.execute("SELECT action FROM audit_log WHERE entity = 'unit' ORDER BY id")]
    assert actions == ["unit.add"] * 3 + ["unit.import"]


def test_a_file_with_bad_rows_writes_nothing_and_names_each_line(db, inspector):
    add_unit(db, name="已有单元", kind="team", devices=["osmand:taken"], actor="test")
    before = units(db)
    text = "\n".join([
        "Name,Kind,Dept,Devices",                                    # 1 header (any case)
        "好的,inspector,,osmand:1",                                   # 2 fine
        "坏类型,mayor,,",                                              # 3 unknown kind
        "",                                                          # 4 blank: skipped
        "无部门,team,不存在的部门,",                                       # 5 unknown department
        "坏设备,team,,gps:1",                                           # 6 malformed device key
        "重复,team,,osmand:1",                                          # 7 same device as line 2
        "已绑定,team,,osmand:taken",                                     # 8 bound in the database
        ",team,,",                                                   # 9 no name
        "多列,team,,,extra",                                            # 10 too many fields
        '"跨行',                                                      # 11-12 a quoted name over two
        '名称",vehicle,,osmand:2',                                     #       lines: fine
    ]) + "\n"
    with pytest.raises(ImportRefused) as refused:
        import_units(db, text, actor="test", source="bad.csv")
    # The shape is checked first: line 10 is named alone, nothing else is looked at yet.
    assert refused.value.problems == [(10, "has 5 fields; the header has 4")]

    text = text.replace("多列,team,,,extra", "多列,team,,")
    with pytest.raises(ImportRefused) as refused:
        import_units(db, text, actor="test", source="bad.csv")
    problems = dict(refused.value.problems)
    assert sorted(problems) == [3, 5, 6, 7, 8, 9]
    assert "kind must be one of" in problems[3] and "'mayor'" in problems[3]
    assert "department '不存在的部门' does not exist" in problems[5]
    assert "'gps:1' must look like owntracks:USER/DEVICE or osmand:ID" in problems[6]
    assert problems[7] == "device osmand:1 is also on line 2"
    assert "osmand:taken is already bound to unit" in problems[8]
    assert problems[9] == "a unit needs a name"
    assert "line 5: department" in str(refused.value) and "nothing was imported" in str(refused.value)
    assert units(db) == before
    assert db.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'unit.import'").fetchone()["n"] == 0


def test_the_header_must_name_known_columns(db, tiny_city):
    with pytest.raises(ImportRefused) as refused:
        import_units(db, "name,type,gps\nA,team,\n", actor="test")
    [(line, reason)] = refused.value.problems
    assert line == 1 and "missing column(s) kind" in reason and "unknown column(s) 'type', 'gps'" in reason


def test_a_login_can_belong_to_one_unit_only(db, inspector):
    first = add_unit(db, name="张三", kind="inspector", username="zhangsan", actor="test")
    with pytest.raises(ImportRefused) as refused:
        import_units(db, "name,kind,user\n张三二号,inspector,zhangsan\n", actor="test")
    assert refused.value.problems == [(2, f"user 'zhangsan' already belongs to unit {first} (张三)")]


# ---------------------------------------------------------------- the commands
@pytest.fixture
def run(db_url, tmp_path):
    env = {"CITYGRID_DATABASE_URL": db_url, "CITYGRID_SECRET_KEY": TEST_SECRET, "CITYGRID_DEMO": "0",
           "CITYGRID_DATA_DIR": str(tmp_path / "data")}
    return lambda *args: CliRunner().invoke(app, list(args), env=env)


def test_units_import_command(run, db, inspector, tmp_path):
    good = tmp_path / "units.csv"
    good.write_bytes(GOOD.encode("gb18030"))                   # as Excel saves it on a Chinese desktop
    result = run("units", "import", str(good))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("added 3 units") and len(units(db)) == 3
    again = run("units", "import", str(good))
    assert again.exit_code == 2
    assert "line 2: " in again.output and "line 3: " in again.output and "nothing was imported" in again.output
    assert len(units(db)) == 3
    missing = run("units", "import", str(tmp_path / "none.csv"))
    assert missing.exit_code == 2 and "cannot read" in missing.output


def test_units_shift_command(run, db, tiny_city, tmp_path):
    unit_id = add_unit(db, name="巡查一组", kind="team", actor="test")
    by_codes = run("units", "shift", str(unit_id), "--from", "2026-03-02T08:00+08:00", "--to",
                   "2026-03-02T12:00+08:00", "--area", "430223001001")
    assert by_codes.exit_code == 0, by_codes.output
    shift = db.execute("SELECT * FROM shift WHERE id = %s", (int(by_codes.output),)).fetchone()
    assert shift["unit_id"] == unit_id and shift["area_grids"] == ["430223001001001", "430223001001002"]

    drawn = tmp_path / "area.geojson"
    drawn.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
        "geometry": {"type": "Polygon", "coordinates": [[[113.340, 27.0], [113.342, 27.0], [113.342, 27.001],
                                                         [113.340, 27.001], [113.340, 27.0]]]}}]}))
    by_polygon = run("units", "shift", str(unit_id), "--from", "2026-03-02T13:00+08:00", "--to",
                     "2026-03-02T17:00+08:00", "--polygon", str(drawn))
    assert by_polygon.exit_code == 0, by_polygon.output
    area = db.execute("SELECT area_grids, ST_Area(area) AS a FROM shift WHERE id = %s",
                      (int(by_polygon.output),)).fetchone()
    assert area["area_grids"] is None and area["a"] == pytest.approx(0.002 * 0.001)

    overlap = run("units", "shift", str(unit_id), "--from", "2026-03-02T11:00+08:00", "--to",
                  "2026-03-02T14:00+08:00", "--area", "430223001001")
    assert overlap.exit_code == 2 and "already has a shift overlapping" in overlap.output
    naive = run("units", "shift", str(unit_id), "--from", "2026-03-03T08:00", "--to", "2026-03-03T12:00",
                "--area", "430223001001")
    assert naive.exit_code == 2 and "need a time zone" in naive.output
    bad_time = run("units", "shift", str(unit_id), "--from", "tomorrow", "--to", "2026-03-03T12:00+08:00",
                   "--area", "430223001001")
    assert bad_time.exit_code == 2 and "--from 'tomorrow' is not an ISO 8601 time" in bad_time.output
    assert db.execute("SELECT count(*) AS n FROM shift").fetchone()["n"] == 2
