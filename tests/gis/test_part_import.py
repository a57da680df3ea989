"""Part import against a real PostGIS: grids are imported first, parts find their grid."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from shapely.geometry import LineString, Point, Polygon, box

from gis.grid_import import import_grids
from gis.importing import ImportFileError, ImportRefused, read_layer
from gis.part_import import import_parts
from tests.gis.test_grid_import import (
    CELL,
    COUNTY,
    FORMATS,
    ORIGIN,
    empty_and_non_spatial_files,
    grid_code,
    lattice,
)

TABLES = ("part", "department", "import_run", "audit_log")
# Shapefile field names stop at 10 characters: the long ones travel under short names.
SHAPEFILE_NAMES = {"dept_owner": "owner", "dept_rights": "rights", "dept_maintainer": "maint",
                   "surveyed_on": "surveyed"}


@pytest.fixture
def grids(db):
    """The 3×4 lattice of test_grid_import: columns 0–1 community 001, 2–3 community 002."""
    import_grids(db, lattice(), source="grids", actor="tester")
    db.commit()


def centre(row: int, col: int, dx: float = 0.0) -> Point:
    return Point(ORIGIN[0] + (col + 0.5 + dx) * CELL, ORIGIN[1] + (row + 0.5) * CELL)


def parts(records: list[dict]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(records, geometry="geometry", crs=4326)


def write(gdf: gpd.GeoDataFrame, folder: Path, fmt: str) -> tuple[Path, dict[str, str]]:
    """The file and the rename mapping that reads it back with the importer's field names."""
    path = folder / f"parts.{fmt}"
    rename = {}
    if fmt == "shp":
        rename = {short: long for long, short in SHAPEFILE_NAMES.items() if long in gdf.columns}
        gdf = gdf.rename(columns=SHAPEFILE_NAMES)
    gdf.to_file(path, driver={"geojson": "GeoJSON", "gpkg": "GPKG", "shp": "ESRI Shapefile"}[fmt])
    return path, rename


def counts(db) -> dict[str, int]:
    return {t: db.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in TABLES}


def part(db, part_id: str) -> dict | None:
    return db.execute(
        "SELECT p.id, p.class_code, p.name, p.status, p.source, p.grid_code, p.surveyed_on, p.updated_at,"
        " d1.name AS owner, d2.name AS rights, d3.name AS maintainer,"
        " ST_X(p.location) AS lon, ST_Y(p.location) AS lat, GeometryType(p.geom) AS kind"
        " FROM part p LEFT JOIN department d1 ON d1.id = p.dept_owner_id"
        " LEFT JOIN department d2 ON d2.id = p.dept_rights_id"
        " LEFT JOIN department d3 ON d3.id = p.dept_maintainer_id WHERE p.id = %s", (part_id,)).fetchone()


def refused(db, gdf) -> ImportRefused:
    with pytest.raises(ImportRefused) as info:
        import_parts(db, gdf, source="test", actor="tester")
    return info.value


def messages(report) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in report.problems:
        out.setdefault(p.feature, []).append(f"{p.field}: {p.message}")
    return out


# ---------------------------------------------------------------------------- good files
@pytest.mark.parametrize("fmt", FORMATS)
def test_good_file_assigns_ids_finds_grids_and_creates_departments(db, grids, tmp_path, fmt):
    gdf = parts([
        {"class_code": "0101", "dept_owner": "县住建局", "dept_maintainer": "县自来水公司",
         "surveyed_on": "2024-05-01", "geometry": centre(0, 0)},
        {"class_code": "0101", "status": "破损", "dept_owner": "县住建局", "source": "调绘",
         "surveyed_on": "2024-05-02", "geometry": centre(2, 3)},
        {"class_code": "0114", "name": "1号路灯", "dept_rights": "县供电公司",
         "surveyed_on": None, "geometry": centre(1, 2)},
    ])
    path, rename = write(gdf, tmp_path, fmt)
    report = import_parts(db, read_layer(path, rename=rename), source=str(path), actor="tester")

    assert (report.total, report.imported, report.rejected, report.problems) == (3, 3, 0, [])
    first = part(db, f"{COUNTY}0101000001")
    assert first["grid_code"] == grid_code(1, 1)
    assert (first["name"], first["status"], first["source"]) == ("上水井盖000001", "完好", "实测")
    assert (first["owner"], first["rights"], first["maintainer"]) == ("县住建局", None, "县自来水公司")
    assert first["surveyed_on"] == dt.date(2024, 5, 1)
    assert (first["lon"], first["lat"]) == pytest.approx((113.3005, 27.0005), abs=1e-9)
    second = part(db, f"{COUNTY}0101000002")
    assert (second["grid_code"], second["status"], second["source"]) == (grid_code(2, 6), "破损", "调绘")
    lamp = part(db, f"{COUNTY}0114000001")
    assert (lamp["name"], lamp["grid_code"], lamp["rights"]) == ("1号路灯", grid_code(2, 3), "县供电公司")
    assert [r["name"] for r in db.execute("SELECT name FROM department ORDER BY name")] == \
        sorted(["县住建局", "县自来水公司", "县供电公司"])
    run = db.execute("SELECT id, kind, imported FROM import_run ORDER BY id DESC").fetchone()
    assert (run["kind"], run["imported"]) == ("parts", 3)
    audit = db.execute("SELECT entity, entity_id, detail FROM audit_log ORDER BY id DESC").fetchone()
    assert (audit["entity"], audit["entity_id"], audit["detail"]["imported"]) == ("part", str(run["id"]), 3)


def test_lines_and_polygons_take_the_grid_under_a_point_on_them(db, grids):
    gdf = parts([
        {"class_code": "0207", "geometry": LineString([(113.3021, 27.0025), (113.3029, 27.0025)])},   # 护栏
        {"class_code": "0404", "geometry": box(113.3031, 27.0001, 113.3039, 27.0009)},             # 绿地
        {"class_code": "0404", "geometry": Polygon([(113.3001, 27.0011), (113.3009, 27.0011),
                                                    (113.3009, 27.0019)])},
    ])
    report = import_parts(db, gdf, source="test", actor="tester")
    assert report.imported == 3
    rows = db.execute("SELECT id, grid_code, GeometryType(geom) AS kind,"
                      " ST_Intersects(location, geom) AS on_it FROM part ORDER BY id").fetchall()
    assert [(r["grid_code"], r["kind"], r["on_it"]) for r in rows] == [
        (grid_code(2, 5), "LINESTRING", True),
        (grid_code(2, 2), "POLYGON", True),
        (grid_code(1, 3), "POLYGON", True),
    ]


def test_ids_continue_after_the_largest_in_the_database_and_the_file(db, grids):
    import_parts(db, parts([{"id": f"{COUNTY}0101000005", "class_code": "0101", "geometry": centre(0, 0)}]),
                 source="first", actor="tester")
    report = import_parts(db, parts([
        {"class_code": "0101", "geometry": centre(0, 1)},
        {"id": f"{COUNTY}0101000009", "class_code": "0101", "geometry": centre(0, 2)},
        {"class_code": "0101", "geometry": centre(0, 3)},
        {"class_code": "0102", "geometry": centre(1, 0)},
    ]), source="second", actor="tester")
    assert report.imported == 4
    assert [r["id"][10:] for r in db.execute("SELECT id FROM part WHERE class_code = '0101' ORDER BY id")] == \
        ["000005", "000009", "000010", "000011"]
    assert part(db, f"{COUNTY}0101000010")["grid_code"] == grid_code(1, 2)     # file order
    assert part(db, f"{COUNTY}0102000001")["name"] == "污水井盖000001"


def test_numeric_class_codes_get_their_leading_zero(db, grids):
    report = import_parts(db, parts([{"class_code": 101, "geometry": centre(0, 0)}]), source="t", actor="tester")
    assert report.imported == 1
    assert part(db, f"{COUNTY}0101000001")["class_code"] == "0101"


def test_reimport_updates_by_id_and_keeps_what_the_file_leaves_blank(db, grids):
    pid = f"{COUNTY}0113000001"
    import_parts(db, parts([{"id": pid, "class_code": "0113", "name": "消火栓甲", "status": "破损",
                             "dept_owner": "县消防救援大队", "geometry": centre(0, 0)}]),
                 source="first", actor="tester")
    before = part(db, pid)
    db.commit()
    report = import_parts(db, parts([{"id": pid, "class_code": "0113", "geometry": centre(0, 1)}]),
                          source="second", actor="tester")
    after = part(db, pid)
    assert report.imported == 1 and counts(db)["part"] == 1
    assert (after["name"], after["status"], after["owner"]) == ("消火栓甲", "破损", "县消防救援大队")
    assert after["grid_code"] == grid_code(1, 2) and after["lon"] == pytest.approx(113.3015)
    assert after["updated_at"] > before["updated_at"]


# ---------------------------------------------------------------------------- broken files
def broken_parts() -> gpd.GeoDataFrame:
    """One problem of each kind on features 1–12; features 0 and 13 are fine."""
    return parts([
        {"class_code": "0101", "dept_owner": "县住建局", "geometry": centre(0, 0)},
        {"class_code": "0199", "geometry": centre(0, 0)},                                    # unknown class
        {"class_code": "1x", "geometry": centre(0, 0)},                                      # not 4 digits
        {"id": "430223010100001", "class_code": "0101", "geometry": centre(0, 0)},           # 15 digits
        {"id": f"{COUNTY}0102000001", "class_code": "0101", "geometry": centre(0, 0)},       # id says 0102
        {"id": f"{COUNTY}0101000007", "class_code": "0101", "geometry": centre(0, 1)},       # duplicate ...
        {"id": f"{COUNTY}0101000007", "class_code": "0101", "geometry": centre(0, 2)},       # ... id
        {"class_code": "0101", "status": "坏了", "geometry": centre(0, 0)},
        {"class_code": "0101", "source": "GPS", "geometry": centre(0, 0)},
        {"class_code": "0101", "surveyed_on": "昨天", "geometry": centre(0, 0)},
        {"class_code": "0101", "geometry": Point(113.40, 27.0005)},                          # outside
        {"id": "4302240101000001", "class_code": "0101", "geometry": centre(0, 0)},          # other county
        {"class_code": "0101", "geometry": Polygon([(113.3001, 27.0001), (113.3009, 27.0009),
                                                    (113.3009, 27.0001), (113.3001, 27.0009)])},  # bow-tie
        {"class_code": "0302", "dept_owner": "县环卫所", "geometry": centre(2, 2)},
    ])


def broken_messages(first: int = 0) -> dict[str, list[str]]:
    """What the report says about broken_parts(), by feature label; `first` is the id of the
    first feature (1 in a GeoPackage)."""
    expected = {
        "feature 1 (class 0199)": ["class_code: class 0199 is not in the parts catalog (part_class)"],
        "feature 2 (class 1x)": ["class_code: class_code '1x' must be 4 digits (2 big + 2 small class)"],
        "feature 3 (id 430223010100001)": [
            "id: part id '430223010100001' must be 16 digits (6 county + 2 big class + 2 small class + 6 sequence)"],
        f"feature 4 (id {COUNTY}0102000001)": [
            f"id: id {COUNTY}0102000001 carries class 0102 but class_code is 0101"],
        f"feature 5 (id {COUNTY}0101000007)": [
            f"id: id {COUNTY}0101000007 appears more than once in the file (also feature 6 (id {COUNTY}0101000007))"],
        f"feature 6 (id {COUNTY}0101000007)": [
            f"id: id {COUNTY}0101000007 appears more than once in the file (also feature 5 (id {COUNTY}0101000007))"],
        "feature 7 (class 0101)": ["status: status '坏了' is not one of 完好, 破损, 丢失, 占用"],
        "feature 8 (class 0101)": ["source: source 'GPS' is not one of 实测, 地形图, 调绘, 其它"],
        "feature 9 (class 0101)": ["surveyed_on: surveyed_on '昨天' is not a date (YYYY-MM-DD)"],
        "feature 10 (class 0101)": [
            "geometry: outside the jurisdiction's unit grids (at (113.400000, 27.000500))"],
        "feature 11 (id 4302240101000001)": [
            "id: id 4302240101000001 is numbered for county 430224 but the feature lies in unit grid "
            f"{grid_code(1, 1)} of county {COUNTY}"],
        "feature 12 (class 0101)": ["geometry: invalid geometry: Self-intersection[113.3005 27.0005]"],
    }

    def shift(text: str) -> str:
        return re.sub(r"\bfeature (\d+)", lambda m: f"feature {int(m.group(1)) + first}", text)

    return {shift(label): [shift(m) for m in found] for label, found in expected.items()}


def test_broken_file_is_refused_with_every_problem_and_nothing_written(db, grids):
    before = counts(db)
    report = refused(db, broken_parts()).report
    assert counts(db) == before
    assert messages(report) == broken_messages()
    assert report.rejected == 12 and report.imported == 0


def test_skip_invalid_imports_the_valid_part_and_reports_the_rest(db, grids):
    report = import_parts(db, broken_parts(), source="test", actor="tester", skip_invalid=True)
    assert (report.total, report.imported, report.rejected) == (14, 2, 12)
    # ids continue after the largest in the file, 000007, even though its features were rejected
    assert {r["id"] for r in db.execute("SELECT id FROM part")} == {f"{COUNTY}0101000008", f"{COUNTY}0302000001"}
    # departments only for what was imported
    assert {r["name"] for r in db.execute("SELECT name FROM department")} == {"县住建局", "县环卫所"}
    assert db.execute("SELECT rejected FROM import_run WHERE kind = 'parts'").fetchone()["rejected"] == 12


def test_parts_without_grids_in_the_database_are_all_outside(db):
    report = refused(db, parts([{"class_code": "0101", "geometry": centre(0, 0)}])).report
    assert "outside the jurisdiction's unit grids" in report.problems[0].message


def test_a_file_without_class_code_is_refused(db, grids):
    report = refused(db, parts([{"kind": "0101", "geometry": centre(0, 0)}])).report
    assert [(p.feature, p.field) for p in report.problems] == [("file", "class_code")]
    assert "--map OLD=class_code" in report.problems[0].message


@pytest.mark.parametrize("fmt", FORMATS)
def test_broken_file_on_disk_is_refused_with_every_problem(db, grids, tmp_path, fmt):
    gdf, expected = broken_parts(), broken_messages(first=1 if fmt == "gpkg" else 0)
    if fmt == "shp":
        # a shapefile holds one geometry type: the bow-tie polygon is covered by the others
        gdf = gdf.drop(index=12).reset_index(drop=True)
        del expected["feature 12 (class 0101)"]
    path, rename = write(gdf, tmp_path, fmt)
    before = counts(db)
    report = refused(db, read_layer(path, rename=rename)).report
    assert counts(db) == before
    assert messages(report) == expected
    again = import_parts(db, read_layer(path, rename=rename), source=str(path), actor="tester",
                         skip_invalid=True)
    assert (again.imported, again.rejected) == (2, len(expected))
    assert {r["id"] for r in db.execute("SELECT id FROM part")} == {f"{COUNTY}0101000008", f"{COUNTY}0302000001"}


# ---------------------------------------------------------------------------- currency and photo
def currency_and_photo(db, part_id: str) -> tuple[str, str | None]:
    row = db.execute("SELECT currency, photo FROM part WHERE id = %s", (part_id,)).fetchone()
    return row["currency"], row["photo"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_currency_and_photo_are_imported_and_a_blank_keeps_them(db, grids, tmp_path, fmt):
    withdrawn, lamp = f"{COUNTY}0101000001", f"{COUNTY}0114000001"
    gdf = parts([
        {"id": withdrawn, "class_code": "0101", "currency": "作废", "photo": "photos/井盖-0001.jpg",
         "geometry": centre(0, 0)},
        {"id": lamp, "class_code": "0114", "currency": None,
         "photo": "https://img.example.cn/parts/lamp.jpg?size=large", "geometry": centre(0, 1)},
    ])
    path, rename = write(gdf, tmp_path, fmt)
    assert import_parts(db, read_layer(path, rename=rename), source=str(path), actor="tester").imported == 2
    assert currency_and_photo(db, withdrawn) == ("作废", "photos/井盖-0001.jpg")
    assert currency_and_photo(db, lamp) == ("在用", "https://img.example.cn/parts/lamp.jpg?size=large")

    # a re-import without the columns does not revive the withdrawn part nor drop the photos
    import_parts(db, parts([{"id": withdrawn, "class_code": "0101", "geometry": centre(0, 0)},
                            {"id": lamp, "class_code": "0114", "currency": "", "photo": " ",
                             "geometry": centre(0, 1)}]), source="again", actor="tester")
    assert currency_and_photo(db, withdrawn) == ("作废", "photos/井盖-0001.jpg")
    assert currency_and_photo(db, lamp) == ("在用", "https://img.example.cn/parts/lamp.jpg?size=large")
    # ... and a value given replaces what is there
    import_parts(db, parts([{"id": withdrawn, "class_code": "0101", "currency": "在用", "photo": "new.jpg",
                             "geometry": centre(0, 0)}]), source="third", actor="tester")
    assert currency_and_photo(db, withdrawn) == ("在用", "new.jpg")


def test_a_bad_currency_or_photo_is_a_problem_of_its_feature(db, grids):
    pid = f"{COUNTY}0101000003"
    report = refused(db, parts([
        {"id": pid, "class_code": "0101", "currency": "停用", "geometry": centre(0, 0)},
        {"class_code": "0101", "photo": "a.jpg\nb.jpg", "geometry": centre(0, 0)},
        {"class_code": "0101", "photo": "x" * 3000, "geometry": centre(0, 0)},
        {"class_code": "0101", "currency": "作废", "photo": "fine.jpg", "geometry": centre(0, 0)},
    ])).report
    assert messages(report) == {
        f"feature 0 (id {pid})": ["currency: currency '停用' is not one of 在用, 作废"],
        "feature 1 (class 0101)": [
            "photo: photo holds control characters; give one path or URL (at most 2048 characters)"],
        "feature 2 (class 0101)": [
            "photo: photo is 3000 characters long; give one path or URL (at most 2048 characters)"],
    }


# ---------------------------------------------------------------------------- a wrong CRS
def test_a_file_entirely_outside_the_grids_says_once_that_its_crs_is_probably_wrong(db, grids):
    located = parts([{"class_code": "0101", "geometry": centre(r, c)} for r, c in ((0, 0), (1, 2), (2, 3))])
    # Gauss-Kruger metres for the 114E zone, declared as the 120E zone
    wrong = located.to_crs(4547).set_crs(4549, allow_override=True)
    report = refused(db, wrong).report
    assert report.rejected == 3 and len(report.problems) == 4
    first = report.problems[0]
    assert (first.feature, first.field) == ("file", "geometry")
    assert re.fullmatch(
        r"all 3 features lie outside the jurisdiction's unit grids: the file's features "
        r"\(lon 119\.\d{4} to 119\.\d{4}, lat 2\d\.\d{4} to 2\d\.\d{4}\) against the jurisdiction's "
        r"\(lon 113\.3000 to 113\.3040, lat 27\.0000 to 27\.0030, 5\d\d km away\); the file declares "
        r"EPSG:4549 \(CGCS2000 / 3-degree Gauss-Kruger CM 120E\), which is probably not the CRS its "
        r"coordinates are in\. Check the CRS it was exported with \(for a shapefile, the \.prj\)", first.message)
    assert all("outside the jurisdiction's unit grids (at" in p.message for p in report.problems[1:])


def test_parts_before_any_grids_say_to_import_the_grids_first(db):
    report = refused(db, parts([{"class_code": "0101", "geometry": centre(0, c)} for c in range(2)])).report
    assert report.problems[0].feature == "file"
    assert report.problems[0].message == ("all 2 features lie outside the jurisdiction's unit grids: "
                                          "the database has no unit grids yet; import the grids first")


def test_some_parts_outside_is_no_file_problem(db, grids):
    report = refused(db, parts([{"class_code": "0101", "geometry": centre(0, 0)},
                                {"class_code": "0101", "geometry": Point(113.40, 27.0005)}])).report
    assert [p.feature for p in report.problems] == ["feature 1 (class 0101)"]


# ---------------------------------------------------------------------------- progress and formats
def test_the_progress_bar_advances_every_thousand_parts(db, grids, capsys):
    spots = [centre(k % 3, k % 4, dx=0.3 * (k % 2) - 0.15) for k in range(2500)]
    report = import_parts(db, parts([{"class_code": "0101", "geometry": p} for p in spots]),
                          source="many", actor="tester", progress=True)
    assert report.imported == 2500
    err = capsys.readouterr().err
    geometry = err[err.index("parts: geometry"):err.index("parts: fields")]
    assert "1000/2500" in geometry and "2000/2500" in geometry
    assert "7000/17500" in err[err.index("parts: fields"):err.index("parts: grids and ids")]
    assert "parts: done" in err


def test_empty_and_non_spatial_geopackages_and_shapefiles_are_refused(db, grids, tmp_path):
    sample = parts([{"class_code": "0101", "name": "井盖", "geometry": centre(0, 0)}])
    for path, message in empty_and_non_spatial_files(sample, tmp_path):
        with pytest.raises(ImportFileError, match=message):
            read_layer(path)
        if path.exists():        # what GDAL itself reads from them is refused by the importer too
            report = refused(db, pyogrio.read_dataframe(path)).report
            assert report.problems[0].feature == "file" and report.imported == 0
    assert counts(db)["part"] == 0
