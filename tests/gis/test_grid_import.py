"""Unit grid import against a real PostGIS: files of each format, good and broken."""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from shapely.geometry import Point, Polygon, box

from gis.grid_import import import_grids
from gis.importing import ImportFileError, ImportRefused, read_layer

COUNTY = "430223"                  # 攸县, Hunan
ORIGIN = (113.30, 27.00)           # lon, lat of the lattice's south-west corner
CELL = 0.001                       # degrees: about 99 m × 111 m
FORMATS = ["geojson", "gpkg", "shp"]
NOCRS_WARNING = pytest.mark.filterwarnings("ignore:'crs' was not provided")   # written on purpose
TABLES = ("county", "street", "community", "grid", "import_run", "audit_log")


# ---------------------------------------------------------------------------- test data
def grid_code(community: int, seq: int, street: int = 1) -> str:
    return f"{COUNTY}{street:03d}{community:03d}{seq:03d}"


def cell(row: int, col: int) -> Polygon:
    x0, y0 = ORIGIN[0] + col * CELL, ORIGIN[1] + row * CELL
    return box(x0, y0, x0 + CELL, y0 + CELL)


def lattice(rows: int = 3, cols: int = 4, community=lambda r, c: 1 + c // 2) -> gpd.GeoDataFrame:
    """rows × cols square grids; by default columns 0–1 form community 001, 2–3 community 002."""
    records, seqs = [], {}
    for r in range(rows):
        for c in range(cols):
            comm = community(r, c)
            seqs[comm] = seqs.get(comm, 0) + 1
            records.append({"code": grid_code(comm, seqs[comm]), "name": f"网格{r}-{c}",
                            "population": 100 * (r + 1), "geometry": cell(r, c)})
    return gpd.GeoDataFrame(records, geometry="geometry", crs=4326)


def write(gdf: gpd.GeoDataFrame, folder: Path, fmt: str, name: str = "grids") -> Path:
    path = folder / f"{name}.{fmt}"
    if fmt == "geojson":
        gdf.to_file(path, driver="GeoJSON")
    elif fmt == "gpkg":
        gdf.to_file(path, driver="GPKG", layer=name)
    else:
        gdf.to_file(path, driver="ESRI Shapefile")
    return path


def counts(db) -> dict[str, int]:
    return {t: db.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in TABLES}


def added(db, before: dict[str, int]) -> dict[str, int]:
    """Rows added since `before` (the template already holds e.g. the catalog's audit row)."""
    return {t: n - before[t] for t, n in counts(db).items()}


def grid_row(db, code: str) -> dict | None:
    return db.execute("SELECT code, name, population, area_m2, updated_at, ST_AsText(geom) AS wkt,"
                      " ST_X(ST_Centroid(geom)) AS lon, ST_Y(ST_Centroid(geom)) AS lat"
                      " FROM grid WHERE code = %s", (code,)).fetchone()


def problems_of(report, feature_part: str) -> list[str]:
    return [p.message for p in report.problems if feature_part in p.feature]


def refused(db, gdf, **kwargs) -> ImportRefused:
    with pytest.raises(ImportRefused) as info:
        import_grids(db, gdf, source="test", actor="tester", **kwargs)
    return info.value


# ---------------------------------------------------------------------------- good files
@pytest.mark.parametrize("fmt", FORMATS)
def test_good_file_imports_grids_and_builds_the_hierarchy(db, tmp_path, fmt):
    path = write(lattice(), tmp_path, fmt)
    before = counts(db)
    report = import_grids(db, read_layer(path), source=str(path), actor="tester")

    assert (report.total, report.imported, report.rejected, report.problems) == (12, 12, 0, [])
    assert added(db, before) == {"county": 1, "street": 1, "community": 2, "grid": 12,
                                 "import_run": 1, "audit_log": 1}
    street = db.execute("SELECT name, kind FROM street").fetchone()
    assert street == {"name": f"{COUNTY}001街道", "kind": "街道"}
    assert [r["name"] for r in db.execute("SELECT name FROM community ORDER BY code")] == \
        [f"{COUNTY}001001社区", f"{COUNTY}001002社区"]
    first = grid_row(db, grid_code(1, 1))
    assert first["name"] == "网格0-0" and first["population"] == 100
    # 0.001° × 0.001° at 27°N: 110.8 m north-south × 99.25 m east-west
    assert first["area_m2"] == pytest.approx(10_997, rel=0.002)
    assert (first["lon"], first["lat"]) == pytest.approx((113.3005, 27.0005), abs=1e-9)
    areas = db.execute(
        "SELECT (SELECT ST_Area(geom::geography) FROM county) AS county,"
        " (SELECT sum(area_m2) FROM grid) AS grids,"
        " (SELECT ST_Area(geom::geography) FROM community WHERE code = %s) AS community,"
        " (SELECT ST_NumGeometries(geom) FROM county) AS county_parts",
        (f"{COUNTY}001001",)).fetchone()
    assert areas["county"] == pytest.approx(areas["grids"], rel=1e-6)
    assert areas["community"] == pytest.approx(areas["grids"] / 2, rel=1e-3)
    assert areas["county_parts"] == 1          # dissolved into one outline
    run = db.execute("SELECT id, kind, source, actor, imported, rejected, report FROM import_run").fetchone()
    assert (run["kind"], run["actor"], run["imported"], run["rejected"]) == ("grids", "tester", 12, 0)
    assert run["report"]["total"] == 12
    audit = db.execute("SELECT actor, action, entity, entity_id, detail FROM audit_log"
                       " WHERE action = 'import'").fetchone()
    assert (audit["action"], audit["entity"], audit["entity_id"]) == ("import", "grid", str(run["id"]))
    assert audit["detail"]["import_run"] == run["id"] and audit["detail"]["imported"] == 12


def test_names_and_county_name_come_from_the_file(db, capsys):
    gdf = lattice()
    gdf["community_name"] = ["东风社区" if c.startswith(f"{COUNTY}001001") else "向阳社区" for c in gdf["code"]]
    gdf["street_name"] = "联星街道"
    import_grids(db, gdf, source="test", actor="tester", county_name="攸县", progress=True)
    assert "grids: done" in capsys.readouterr().err               # the tqdm bar on stderr
    assert db.execute("SELECT name FROM county").fetchone()["name"] == "攸县"
    assert db.execute("SELECT name FROM street").fetchone()["name"] == "联星街道"
    assert [r["name"] for r in db.execute("SELECT name FROM community ORDER BY code")] == ["东风社区", "向阳社区"]


def test_town_and_township_codes_get_their_kind(db):
    gdf = lattice(1, 2)
    gdf["code"] = [f"{COUNTY}101001001", f"{COUNTY}201001001"]
    import_grids(db, gdf, source="test", actor="tester")
    rows = db.execute("SELECT code, kind, name FROM street ORDER BY code").fetchall()
    assert [(r["kind"], r["name"]) for r in rows] == [("镇", f"{COUNTY}101镇"), ("乡", f"{COUNTY}201乡")]
    assert db.execute("SELECT name FROM community ORDER BY code").fetchone()["name"] == f"{COUNTY}101001村"


def test_legacy_14_digit_codes_are_widened(db):
    gdf = lattice(1, 2, community=lambda r, c: 1)
    gdf["code"] = [f"{COUNTY}00100101", f"{COUNTY}00100102"]      # 14 digits, 2-digit sequence
    report = import_grids(db, gdf, source="test", actor="tester")
    assert report.imported == 2
    assert [r["code"] for r in db.execute("SELECT code FROM grid ORDER BY code")] == \
        [f"{COUNTY}001001001", f"{COUNTY}001001002"]


def test_numeric_codes_are_accepted(db):
    gdf = lattice(1, 2)
    gdf["code"] = [int(c) for c in gdf["code"]]
    assert import_grids(db, gdf, source="test", actor="tester").imported == 2
    assert grid_row(db, grid_code(1, 1)) is not None


def test_projected_files_are_reprojected_to_wgs84(db, tmp_path):
    # CGCS2000 / 3-degree Gauss-Kruger CM 114E as a shapefile, Web Mercator as a GeoPackage
    shp = write(lattice().to_crs(4547), tmp_path, "shp")
    assert import_grids(db, read_layer(shp), source=str(shp), actor="tester").imported == 12
    row = grid_row(db, grid_code(1, 1))
    assert (row["lon"], row["lat"]) == pytest.approx((113.3005, 27.0005), abs=1e-7)

    moved = lattice()
    moved["geometry"] = moved.geometry.translate(0.01, 0)            # a new area, same codes
    gpkg = write(moved.to_crs(3857), tmp_path, "gpkg")
    import_grids(db, read_layer(gpkg), source=str(gpkg), actor="tester")
    row = grid_row(db, grid_code(1, 1))
    assert (row["lon"], row["lat"]) == pytest.approx((113.3105, 27.0005), abs=1e-7)


def test_zipped_shapefile_is_read(db, tmp_path):
    write(lattice(), tmp_path, "shp")
    archive = tmp_path / "grids.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for part in tmp_path.glob("grids.*"):
            if part.suffix != ".zip":
                z.write(part, f"export/{part.name}")
    assert len(read_layer(archive)) == 12
    assert import_grids(db, read_layer(archive), source=str(archive), actor="tester").imported == 12


# ---------------------------------------------------------------------------- broken files
def broken_lattice() -> gpd.GeoDataFrame:
    """A 3×4 lattice with one problem of each kind, on features 1–5 (0 is fine)."""
    gdf = lattice()
    geoms = list(gdf.geometry)
    geoms[1] = Polygon([(113.301, 27.0), (113.302, 27.001), (113.302, 27.0), (113.301, 27.001)])  # bow-tie
    geoms[2] = shapely.affinity.translate(geoms[2], CELL / 2, 0)    # half over its neighbour
    gdf["code"] = gdf["code"].astype(object)
    gdf.loc[4, "code"] = "43022300100"                               # 11 digits
    gdf.loc[5, "code"] = gdf.loc[6, "code"]                          # duplicate
    gdf.loc[7, "population"] = -3
    gdf.geometry = geoms
    return gdf


@pytest.mark.parametrize("fmt", FORMATS)
def test_broken_file_is_refused_with_every_problem_and_nothing_written(db, tmp_path, fmt):
    path = write(broken_lattice(), tmp_path, fmt)
    gdf = read_layer(path)
    before = counts(db)
    error = refused(db, gdf)
    report = error.report

    assert counts(db) == before                            # not even import_run / audit_log
    assert report.imported == 0 and report.total == 12
    first = 1 if fmt == "gpkg" else 0                       # GeoPackage fids count from 1
    label = {i: f"feature {i + first} " for i in range(12)}
    assert any("Self-intersection" in m for m in problems_of(report, label[1]))
    overlap_2 = problems_of(report, label[2])
    assert overlap_2 and all("overlaps" in m and "m²" in m for m in overlap_2)
    assert any(label[2] in m for m in problems_of(report, label[3]))   # the neighbour is told too
    assert any("11 digits" in m for m in problems_of(report, label[4]))
    assert any("more than once" in m for m in problems_of(report, label[5]))
    assert any("more than once" in m for m in problems_of(report, label[6]))
    assert any("population" in m for m in problems_of(report, label[7]))
    assert problems_of(report, label[0]) == [] and problems_of(report, label[11]) == []
    assert report.rejected == 7
    text = report.to_text()
    assert len(text.splitlines()) == 1 + len(report.problems)
    assert "Self-intersection" in str(error)
    json.dumps(report.to_json(), ensure_ascii=False)        # serialisable as is


def test_skip_invalid_imports_the_valid_part_and_reports_the_rest(db):
    report = import_grids(db, broken_lattice(), source="test", actor="tester", skip_invalid=True)
    assert (report.imported, report.rejected) == (5, 7)
    # an overlap rejects both features involved; feature 3 is the one overlapped
    stored = {r["code"] for r in db.execute("SELECT code FROM grid")}
    expected = {c for i, c in enumerate(lattice()["code"]) if i in (0, 8, 9, 10, 11)}
    assert stored == expected
    run = db.execute("SELECT imported, rejected, report FROM import_run").fetchone()
    assert (run["imported"], run["rejected"]) == (5, 7)
    assert len(run["report"]["problems"]) == len(report.problems)


def test_small_overlap_within_tolerance_is_accepted(db):
    gdf = lattice(1, 2)
    # widen the first grid by 0.2 m over its neighbour: a 0.2 m × 110.8 m strip, about 22 m²
    x0, y0, x1, y1 = gdf.geometry[0].bounds
    gdf.loc[0, "geometry"] = box(x0, y0, x1 + 0.2 / 99_254, y1)
    assert refused(db, gdf).report.rejected == 2
    assert import_grids(db, gdf, source="test", actor="tester", overlap_tolerance_m2=30).imported == 2


def test_overlap_with_a_grid_already_in_the_database(db):
    import_grids(db, lattice(1, 2, community=lambda r, c: 1), source="first", actor="tester")
    before = counts(db)
    newcomer = gpd.GeoDataFrame({"code": [grid_code(2, 1)]},
                                geometry=[shapely.affinity.translate(cell(0, 1), CELL / 2, 0)], crs=4326)
    report = refused(db, newcomer).report
    assert counts(db) == before
    assert len(report.problems) == 1
    assert "unit grid 430223001001002 already in the database" in report.problems[0].message
    # a re-import that replaces the grids it overlaps is fine
    moved = lattice(1, 2, community=lambda r, c: 1)
    moved.geometry = moved.geometry.translate(CELL / 2, 0)
    assert import_grids(db, moved, source="second", actor="tester").imported == 2


def test_gap_inside_a_community_refuses_the_file(db):
    ring = lattice(3, 3, community=lambda r, c: 1).drop(index=4)     # the centre grid is missing
    report = refused(db, ring).report
    assert report.rejected == 0 and len(report.problems) == 1
    gap = report.problems[0]
    assert gap.feature == f"community {COUNTY}001001"
    area, lon, lat = map(float, re.search(r"gap of ([\d.]+) m² .*\(([\d.]+), ([\d.]+)\)", gap.message).groups())
    assert area == pytest.approx(10_997, rel=0.002)
    assert (lon, lat) == pytest.approx((113.3015, 27.0015), abs=0.0005)   # inside the missing grid
    assert counts(db)["grid"] == 0
    # the tolerance decides; with skip_invalid the gap is reported and nothing is rejected
    assert import_grids(db, ring, source="test", actor="tester", gap_tolerance_m2=20_000).problems == []
    again = import_grids(db, ring, source="test", actor="tester", skip_invalid=True)
    assert (again.imported, again.rejected, len(again.problems)) == (8, 0, 1)


def test_an_enclave_community_is_not_a_gap(db):
    gdf = lattice(3, 3, community=lambda r, c: 2 if (r, c) == (1, 1) else 1)
    assert import_grids(db, gdf, source="test", actor="tester").problems == []
    # importing the surrounding community alone later: the hole is filled from the database
    assert import_grids(db, gdf.drop(index=4), source="again", actor="tester").problems == []


def test_geometry_problems_each_get_their_own_message(db):
    gdf = gpd.GeoDataFrame(
        {"code": [grid_code(1, i) for i in range(1, 5)]},
        geometry=[cell(0, 0), Point(113.3015, 27.0005), Polygon(), None], crs=4326)
    report = refused(db, gdf).report
    assert [p.message for p in report.problems] == [
        "is a Point, expected a Polygon or MultiPolygon", "empty geometry", "no geometry"]
    assert [p.feature for p in report.problems] == [
        f"feature {i} (code {grid_code(1, i + 1)})" for i in (1, 2, 3)]


def test_bad_codes_carry_the_code_rules_message(db):
    gdf = lattice(1, 5, community=lambda r, c: 1)
    gdf["code"] = ["", "abc", "990223001001001", f"{COUNTY}400001001", f"{COUNTY}001000001"]
    report = refused(db, gdf).report
    messages = [p.message for p in report.problems]
    assert messages[0] == "no grid code"
    assert "digits only" in messages[1]
    assert "province" in messages[2]
    assert "001–399" in messages[3]
    assert "community part 000" in messages[4]
    assert all(p.field == "code" for p in report.problems)


def test_a_county_different_from_the_rest_of_the_file(db):
    gdf = lattice(1, 3, community=lambda r, c: 1)
    gdf["code"] = gdf["code"].astype(object)
    gdf.loc[2, "code"] = "430224001001003"
    report = refused(db, gdf).report
    assert [(p.feature, p.message) for p in report.problems] == [
        ("feature 2 (code 430224001001003)", "county 430224 differs from the rest of the file (county 430223)")]


def test_a_county_different_from_the_database(db):
    import_grids(db, lattice(1, 2), source="first", actor="tester")
    other = lattice(1, 2)
    other["code"] = ["430224001001001", "430224001001002"]
    other.geometry = other.geometry.translate(0.1, 0)
    report = refused(db, other).report
    assert report.rejected == 2
    assert all("jurisdiction's county in the database (430223)" in p.message for p in report.problems)


def test_a_community_with_two_names(db):
    gdf = lattice(1, 3, community=lambda r, c: 1)
    gdf["community_name"] = ["东风社区", "东风社区", "红旗社区"]
    report = refused(db, gdf).report
    assert [(p.feature, p.field) for p in report.problems] == [
        (f"feature 2 (code {grid_code(1, 3)})", "community_name")]
    assert "named '东风社区' by 2 other feature(s)" in report.problems[0].message
    assert import_grids(db, gdf, source="t", actor="tester", skip_invalid=True).imported == 2
    assert db.execute("SELECT name FROM community").fetchone()["name"] == "东风社区"


def test_reimport_updates_geometry_name_and_population(db):
    before_any = counts(db)
    import_grids(db, lattice(), source="first", actor="tester")
    before = grid_row(db, grid_code(1, 1))
    community_area = db.execute("SELECT ST_Area(geom::geography) AS a FROM community WHERE code = %s",
                                (f"{COUNTY}001001",)).fetchone()["a"]
    db.commit()

    changed = lattice()
    changed.loc[0, "geometry"] = box(113.2995, 27.0, 113.301, 27.001)   # grows westwards by half
    changed.loc[0, "population"] = 999
    changed = changed.drop(columns=["name"])                              # names kept as they are
    report = import_grids(db, changed, source="second", actor="tester")
    after = grid_row(db, grid_code(1, 1))

    assert report.imported == 12 and counts(db)["grid"] == 12
    assert after["population"] == 999 and after["name"] == "网格0-0"
    assert after["area_m2"] == pytest.approx(before["area_m2"] * 1.5, rel=1e-3)
    assert after["updated_at"] > before["updated_at"]
    new_area = db.execute("SELECT ST_Area(geom::geography) AS a FROM community WHERE code = %s",
                          (f"{COUNTY}001001",)).fetchone()["a"]
    assert new_area == pytest.approx(community_area + before["area_m2"] / 2, rel=1e-3)
    assert added(db, before_any)["import_run"] == 2 and added(db, before_any)["audit_log"] == 2


# ---------------------------------------------------------------------------- reading files
def test_rename_maps_the_files_field_names(db, tmp_path):
    gdf = lattice().rename(columns={"code": "BM", "population": "RK"})
    path = write(gdf, tmp_path, "shp")
    frame = read_layer(path, rename={"BM": "code", "RK": "population"})
    assert import_grids(db, frame, source=str(path), actor="tester").imported == 12
    assert grid_row(db, grid_code(1, 1))["population"] == 100
    with pytest.raises(ImportFileError, match="BMX.*its fields are: BM, name, RK"):
        read_layer(path, rename={"BMX": "code"})


def test_a_file_without_the_code_field_is_refused(db):
    report = refused(db, lattice().rename(columns={"code": "BM"})).report
    assert report.problems[0].feature == "file"
    assert "--map OLD=code" in report.problems[0].message


def test_geopackage_layers_are_chosen_by_name(db, tmp_path):
    path = write(lattice(), tmp_path, "gpkg", name="grids")
    lattice().to_file(path, layer="grids_old", driver="GPKG")
    pyogrio.write_dataframe(pd.DataFrame({"code": ["x"]}), path, layer="notes")
    with pytest.raises(ImportFileError, match="several layers.*grids .*grids_old.*notes \\(table, no geometry\\)"):
        read_layer(path)
    with pytest.raises(ImportFileError, match="no layer 'nope'; its layers are: grids, grids_old, notes"):
        read_layer(path, layer="nope")
    with pytest.raises(ImportFileError, match="no geometry column"):
        read_layer(path, layer="notes")
    assert len(read_layer(path, layer="grids")) == 12


def test_shapefile_without_prj_is_refused(tmp_path):
    path = write(lattice(), tmp_path, "shp")
    path.with_suffix(".prj").unlink()
    with pytest.raises(ImportFileError, match=r"no grids\.prj beside the shapefile.*add the \.prj"):
        read_layer(path)


def test_empty_and_non_spatial_files_are_refused(tmp_path):
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(ImportFileError, match="holds no features"):
        read_layer(empty)
    table = tmp_path / "grids.csv"
    table.write_text("code,name\n430223001001001,a\n")
    with pytest.raises(ImportFileError, match="no geometry column"):
        read_layer(table)
    with pytest.raises(ImportFileError, match="file not found"):
        read_layer(tmp_path / "missing.gpkg")
    garbage = tmp_path / "garbage.geojson"
    garbage.write_text("this is not json")
    with pytest.raises(ImportFileError, match="cannot be read"):
        read_layer(garbage)


@NOCRS_WARNING
def test_a_geopackage_without_crs_is_refused(tmp_path):
    path = tmp_path / "nocrs.gpkg"
    lattice().set_crs(None, allow_override=True).to_file(path, driver="GPKG")
    with pytest.raises(ImportFileError, match="no coordinate reference system.*set the layer's CRS"):
        read_layer(path)


@NOCRS_WARNING
def test_projected_coordinates_in_a_geojson_without_crs_are_caught(db, tmp_path):
    # GeoJSON is WGS84 by definition; metres written into it cannot be longitudes
    path = tmp_path / "metres.geojson"
    lattice().to_crs(4547).set_crs(None, allow_override=True).to_file(path, driver="GeoJSON")
    report = refused(db, read_layer(path)).report
    assert report.rejected == 12
    assert all("outside longitude/latitude" in p.message for p in report.problems)


def test_a_legacy_code_and_its_15_digit_form_are_duplicates(db):
    gdf = lattice(1, 2, community=lambda r, c: 1)
    gdf["code"] = [f"{COUNTY}00100101", f"{COUNTY}001001001"]
    report = refused(db, gdf).report
    assert [p.message for p in report.problems] == [
        f"code {COUNTY}001001001 appears more than once in the file (also feature 1 (code {COUNTY}001001001))",
        f"code {COUNTY}001001001 appears more than once in the file (also feature 0 (code {COUNTY}00100101))"]


def test_a_feature_given_twice_is_a_duplicate_not_also_an_overlap(db):
    gdf = lattice(1, 2, community=lambda r, c: 1)
    twice = pd.concat([gdf, gdf.iloc[[1]]], ignore_index=True)
    report = refused(db, twice).report
    assert report.rejected == 2
    assert [(p.feature, p.field) for p in report.problems] == [
        (f"feature 1 (code {grid_code(1, 2)})", "code"), (f"feature 2 (code {grid_code(1, 2)})", "code")]


# ---------------------------------------------------------------------------- what is written
def overlaps_in_database(db) -> list[tuple[str, str, float]]:
    """Pairs of stored grids overlapping by more than 1 m²."""
    rows = db.execute(
        "SELECT a.code AS a, b.code AS b, ST_Area(ST_Intersection(a.geom, b.geom)::geography) AS m2"
        " FROM grid a JOIN grid b ON a.code < b.code AND ST_Intersects(a.geom, b.geom)").fetchall()
    return [(r["a"], r["b"], r["m2"]) for r in rows if r["m2"] > 1]


def bow_tie(row: int, col: int) -> Polygon:
    x0, y0 = ORIGIN[0] + col * CELL, ORIGIN[1] + row * CELL
    return Polygon([(x0, y0), (x0 + CELL, y0 + CELL), (x0 + CELL, y0), (x0, y0 + CELL)])


def test_a_rejected_feature_keeps_its_database_grid_so_no_other_may_cover_it(db):
    # The review's case: A in the database; the file has A as a bow-tie and B over the old A.
    import_grids(db, lattice(1, 2, community=lambda r, c: 1), source="first", actor="tester")
    a, b = grid_code(1, 1), grid_code(1, 3)
    gdf = gpd.GeoDataFrame({"code": [a, b]}, geometry=[bow_tie(0, 0), cell(0, 0)], crs=4326)

    assert problems_of(refused(db, gdf).report, "feature 1 ") == [
        f"overlaps unit grid {a} already in the database, which stays because feature 0 (code {a}) "
        "that would replace it is rejected, by 11003.1 m² around (113.300500, 27.000500)"]
    report = import_grids(db, gdf, source="second", actor="tester", skip_invalid=True)
    assert (report.imported, report.rejected) == (0, 2)
    assert overlaps_in_database(db) == []
    assert grid_row(db, b) is None and grid_row(db, a)["lon"] == pytest.approx(113.3005)


def test_rejections_bring_back_database_grids_until_nothing_written_overlaps(db):
    import_grids(db, lattice(1, 2, community=lambda r, c: 1), source="first", actor="tester")
    a = grid_code(1, 1)
    gdf = gpd.GeoDataFrame(
        {"code": [a, grid_code(1, 4), grid_code(1, 3), grid_code(1, 5)]},
        geometry=[cell(0, 3),                                              # A moves east ...
                  shapely.affinity.translate(cell(0, 3), CELL / 2, 0),     # ... onto a newcomer: both out
                  cell(0, 0),                                              # B takes A's old place
                  cell(0, 2)],                                             # fine
        crs=4326)
    report = import_grids(db, gdf, source="second", actor="tester", skip_invalid=True)
    # B was fine while A looked replaced; A's rejection keeps the old A, which B overlaps
    assert any(f"unit grid {a} already in the database, which stays because feature 0" in m
               for m in problems_of(report, "feature 2 "))
    assert (report.imported, report.rejected) == (1, 3)
    assert overlaps_in_database(db) == []
    assert {r["code"] for r in db.execute("SELECT code FROM grid")} == {a, grid_code(1, 2), grid_code(1, 5)}


def test_a_gap_left_by_a_rejected_feature_is_reported_and_rejects_nothing_more(db):
    ring = lattice(3, 3, community=lambda r, c: 1)
    ring.loc[4, "population"] = -3                    # the centre grid is rejected, not missing
    centre = f"feature 4 (code {grid_code(1, 5)})"
    for report in (refused(db, ring).report,
                   import_grids(db, ring, source="test", actor="tester", skip_invalid=True)):
        assert report.rejected == 1
        gaps = [p for p in report.problems if p.feature == f"community {COUNTY}001001"]
        assert len(gaps) == 1 and f"where rejected {centre} would be" in gaps[0].message
        area = float(re.search(r"gap of ([\d.]+) m²", gaps[0].message).group(1))
        assert area == pytest.approx(10_997, rel=0.002)
    assert counts(db)["grid"] == 8


def test_a_gap_the_file_draws_is_reported_once_not_again_as_left_by_rejection(db):
    ring = lattice(3, 3, community=lambda r, c: 1).drop(index=4)
    ring.loc[0, "population"] = -3                     # a rejection that closes no hole
    report = import_grids(db, ring, source="test", actor="tester", skip_invalid=True)
    assert [p.feature for p in report.problems] == [f"feature 0 (code {grid_code(1, 1)})",
                                                     f"community {COUNTY}001001"]


# ---------------------------------------------------------------------------- a wrong CRS
def test_a_file_far_from_the_grids_in_the_database_is_refused_as_a_wrong_crs(db):
    import_grids(db, lattice(), source="first", actor="tester")
    # Gauss-Kruger metres for the 114E zone, declared as the 120E zone: 6° east, ~590 km
    wrong = lattice().to_crs(4547).set_crs(4549, allow_override=True)
    report = refused(db, wrong).report
    assert report.rejected == 12 and len(report.problems) == 1
    problem = report.problems[0]
    assert (problem.feature, problem.field) == ("file", "geometry")
    assert re.search(r"the file's features \(lon 119\.\d+ to 119\.\d+, lat 2\d\.\d+ to 2\d\.\d+\) lie 5\d\d km "
                     r"from the unit grids already in the database \(lon 113\.3000 to 113\.3040, "
                     r"lat 27\.0000 to 27\.0030\); the file declares EPSG:4549 ", problem.message)
    assert "probably not the CRS" in problem.message
    again = import_grids(db, wrong, source="again", actor="tester", skip_invalid=True)
    assert again.imported == 0
    assert grid_row(db, grid_code(1, 1))["lon"] == pytest.approx(113.3005)     # nothing moved


def test_a_new_area_near_the_jurisdiction_is_not_suspect_and_the_check_can_be_turned_off(db):
    import_grids(db, lattice(), source="first", actor="tester")
    nearby = lattice(1, 2, community=lambda r, c: 5)
    nearby.geometry = nearby.geometry.translate(0.3, 0)                  # about 30 km east
    assert import_grids(db, nearby, source="nearby", actor="tester").imported == 2
    far = lattice(1, 2, community=lambda r, c: 6)
    far.geometry = far.geometry.translate(1.0, 0)                        # about 100 km east
    assert refused(db, far).report.problems[0].feature == "file"
    assert import_grids(db, far, source="far", actor="tester", plausible_distance_km=None).imported == 2


def test_the_first_import_into_an_empty_database_has_nothing_to_compare_with(db):
    far = lattice(1, 2)
    far.geometry = far.geometry.translate(5.0, 0)
    assert import_grids(db, far, source="first", actor="tester").imported == 2


# ---------------------------------------------------------------------------- progress
def test_the_progress_bar_advances_every_thousand_features(db, capsys):
    big = lattice(50, 50)                          # 2,500 grids in 25 communities of 100
    assert import_grids(db, big, source="big", actor="tester", progress=True).imported == 2500
    err = capsys.readouterr().err
    for stage in ("geometry", "codes and fields", "overlaps", "gaps", "write"):
        assert f"grids: {stage}" in err
    geometry = err[err.index("grids: geometry"):err.index("grids: codes and fields")]
    assert "1000/2500" in geometry and "2000/2500" in geometry and "2500/2500" in geometry
    overlaps = err[err.index("grids: overlaps"):err.index("grids: gaps")]
    assert "1000/2500" in overlaps
    assert "grids: done" in err


# ---------------------------------------------------------------------------- formats
def test_a_gap_is_found_in_a_geopackage_file_too(db, tmp_path):
    path = write(lattice(3, 3, community=lambda r, c: 1).drop(index=4), tmp_path, "gpkg")
    report = refused(db, read_layer(path)).report
    assert [(p.feature, p.field) for p in report.problems] == [(f"community {COUNTY}001001", None)]
    assert report.problems[0].message == "gap of 11003.0 m² between its grids around (113.301500, 27.001500)"
    again = import_grids(db, read_layer(path), source=str(path), actor="tester", skip_invalid=True)
    assert (again.imported, again.rejected, len(again.problems)) == (8, 0, 1)


def empty_and_non_spatial_files(gdf: gpd.GeoDataFrame, folder: Path) -> list[tuple[Path, str]]:
    """GeoPackage and Shapefile versions of 'no features' and 'no geometry', each with the
    message read_layer gives. `gdf` supplies the fields (and geometry type) to write."""
    fields = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    cases = []
    empty_gpkg = folder / "empty.gpkg"
    gdf.iloc[:0].to_file(empty_gpkg, driver="GPKG", layer="features")
    cases.append((empty_gpkg, r"empty\.gpkg \(layer features\) holds no features"))
    table_gpkg = folder / "table.gpkg"
    pyogrio.write_dataframe(fields, table_gpkg, layer="features")        # attributes only
    cases.append((table_gpkg, r"table\.gpkg \(layer features\) has no geometry column: it is a plain table"))
    empty_shp = folder / "empty.shp"
    gdf.iloc[:0].to_file(empty_shp, driver="ESRI Shapefile")
    cases.append((empty_shp, r"empty\.shp holds no features"))
    lone_dbf = folder / "table.dbf"
    pyogrio.write_dataframe(fields, lone_dbf, driver="ESRI Shapefile")  # a .dbf without .shp
    cases.append((lone_dbf, r"table\.dbf has no geometry column: it is a plain table"))
    cases.append((folder / "table.shp", r"table\.shp: file not found; only table\.dbf \(the attribute table\) "
                                        r"is there, the \.shp holding the geometry is missing"))
    return cases


def test_empty_and_non_spatial_geopackages_and_shapefiles_are_refused(db, tmp_path):
    for path, message in empty_and_non_spatial_files(lattice(), tmp_path):
        with pytest.raises(ImportFileError, match=message):
            read_layer(path)
        if path.exists():        # what GDAL itself reads from them is refused by the importer too
            frame = pyogrio.read_dataframe(path)
            report = refused(db, frame).report
            assert report.problems[0].feature == "file" and report.imported == 0
    assert counts(db)["grid"] == 0
