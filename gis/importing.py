"""Shared pieces of the grid and part importers: reading a GIS file, field renames, the
one-pass problem list, the report, and the bulk write helpers (COPY, import_run + audit).

Supported files: GeoJSON, GeoPackage (choose the layer), Shapefile (.shp or a .zip
holding one). Feature labels use the feature id GDAL reports (the GeoPackage fid, the
shapefile record number from 0, the GeoJSON feature id or position from 0), which is the
id QGIS shows, so a person can find the feature the report names.
"""
from __future__ import annotations

import json
import math
import sys
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pyogrio
import shapely
from pyproj import CRS, Transformer
from tqdm import tqdm

from gis.db import audit
from gis.errors import Invalid

SUPPORTED = "GeoJSON (.geojson/.json), GeoPackage (.gpkg), Shapefile (.shp or a .zip holding one)"
WGS84 = 4326
KM_PER_DEGREE = 111.32             # one degree of latitude, near enough to tell 5 km from 50 km
PROGRESS_EVERY = 1_000             # features between progress-bar updates
T = TypeVar("T")


class ImportFileError(Invalid):
    """The file cannot be imported at all (unreadable, empty, non-spatial, unknown layer,
    no CRS, a required field missing); the message says what to do."""


# ---------------------------------------------------------------------------- reading
def read_layer(path: Path, layer: str | None = None,
               rename: dict[str, str] | None = None) -> gpd.GeoDataFrame:
    """Read one layer of a GIS file into a GeoDataFrame indexed by feature id.

    `rename` maps file field names to the names the importer expects (the CLI's
    --map old=new). Refuses, with a message a person can act on: a missing or unreadable
    file, an unknown or ambiguous GeoPackage layer, a table without geometry, a layer
    without features, a layer without a coordinate reference system."""
    path = Path(path)
    if not path.exists():
        raise ImportFileError(f"{path}: file not found{_missing_shp_hint(path)}")
    source = _gdal_source(path)
    layer = _choose_layer(path, source, layer)
    info = _layer_info(path, source, layer)
    if info["geometry_type"] is None:
        raise ImportFileError(
            f"{_where(path, layer)} has no geometry column: it is a plain table, not a map layer. "
            f"Export it with its geometry as {SUPPORTED}")
    if info["features"] == 0:
        raise ImportFileError(f"{_where(path, layer)} holds no features")
    if info["crs"] is None:
        raise ImportFileError(_no_crs_message(path, layer))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # e.g. "could not parse column as JSON": kept as text
        gdf = pyogrio.read_dataframe(source, layer=layer, fid_as_index=True)
    if len(gdf) == 0:
        raise ImportFileError(f"{_where(path, layer)} holds no features")
    return rename_fields(gdf, rename or {})


def rename_fields(gdf: gpd.GeoDataFrame, rename: dict[str, str]) -> gpd.GeoDataFrame:
    """Apply old→new field renames; an unknown old name is an error listing the fields."""
    missing = [old for old in rename if old not in gdf.columns]
    if missing:
        fields = ", ".join(str(c) for c in gdf.columns if c != gdf.geometry.name)
        raise ImportFileError(f"field(s) {', '.join(missing)} named in the field mapping are not in "
                              f"the file; its fields are: {fields}")
    return gdf.rename(columns=rename) if rename else gdf


def _gdal_source(path: Path) -> str:
    """The name GDAL opens: a zipped shapefile is read through /vsizip/."""
    suffix = path.suffix.lower()
    if suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except zipfile.BadZipFile as e:
            raise ImportFileError(f"{path}: not a readable zip archive ({e})") from e
        shps = [n for n in names if n.lower().endswith(".shp")]
        if len(shps) != 1:
            found = ", ".join(shps) or "none"
            raise ImportFileError(f"{path}: a zip must hold exactly one shapefile (.shp); found {found}")
        stem = shps[0][:-4].lower()
        if not any(n.lower() == stem + ".prj" for n in names):
            raise ImportFileError(f"{path}: {shps[0]} has no .prj beside it inside the zip; "
                                  "add the .prj (the coordinate reference system) and zip again")
        return f"/vsizip/{path}/{shps[0]}"
    if suffix == ".shp" and not _sidecar(path, ".prj"):
        raise ImportFileError(f"{path}: no {path.stem}.prj beside the shapefile, so its coordinate "
                              "reference system is unknown; add the .prj exported with the data")
    return str(path)


def _missing_shp_hint(path: Path) -> str:
    """A .dbf left without its .shp is a common copying mistake: say which part is missing."""
    if path.suffix.lower() != ".shp" or not path.parent.is_dir() or not _sidecar(path, ".dbf"):
        return ""
    return (f"; only {path.stem}.dbf (the attribute table) is there, the .shp holding the geometry "
            "is missing: copy all of the shapefile's files (.shp, .shx, .dbf, .prj) or zip them")


def _sidecar(path: Path, suffix: str) -> bool:
    return any(p.suffix.lower() == suffix and p.stem == path.stem for p in path.parent.iterdir())


def _choose_layer(path: Path, source: str, layer: str | None) -> str | None:
    try:
        layers = pyogrio.list_layers(source)
    except Exception as e:  # GDAL's own error types vary by driver
        raise ImportFileError(f"{path}: cannot be read as a GIS file ({e}); supported: {SUPPORTED}") from e
    names = [str(name) for name, _geometry_type in layers]
    if layer is not None:
        if layer not in names:
            raise ImportFileError(f"{path}: no layer {layer!r}; its layers are: {', '.join(names)}")
        return layer
    if len(names) > 1:
        described = ", ".join(f"{name} ({gtype or 'table, no geometry'})" for name, gtype in layers)
        raise ImportFileError(f"{path} holds several layers; choose one with --layer: {described}")
    return names[0] if names else None


def _layer_info(path: Path, source: str, layer: str | None) -> dict[str, Any]:
    try:
        return pyogrio.read_info(source, layer=layer)
    except Exception as e:
        raise ImportFileError(f"{path}: cannot be read as a GIS file ({e}); supported: {SUPPORTED}") from e


def _where(path: Path, layer: str | None) -> str:
    return f"{path} (layer {layer})" if layer and path.suffix.lower() == ".gpkg" else str(path)


def _no_crs_message(path: Path, layer: str | None) -> str:
    if path.suffix.lower() == ".gpkg":
        return (f"{_where(path, layer)} has no coordinate reference system (srs_id undefined); "
                "set the layer's CRS in your GIS and export again")
    return (f"{path} has no coordinate reference system; export it again with its CRS "
            "(for a shapefile, the .prj file)")


# ---------------------------------------------------------------------------- report
@dataclass
class Problem:
    feature: str          # the feature as the user knows it, e.g. "feature 12 (code 430223001002015)"
    field: str | None     # the field at fault, None for the geometry as a whole or an area
    message: str


@dataclass
class ImportReport:
    kind: str             # "grids" or "parts" (import_run.kind)
    source: str
    total: int
    imported: int
    rejected: int
    problems: list[Problem] = field(default_factory=list)

    def to_text(self) -> str:
        head = (f"{self.kind} import from {self.source}: {self.total} features, "
                f"{self.imported} imported, {self.rejected} rejected, {len(self.problems)} problems")
        lines = [head]
        for p in self.problems:
            where = f"{p.feature} [{p.field}]" if p.field else p.feature
            lines.append(f"  {where}: {p.message}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return asdict(self)


class ImportRefused(Invalid):
    """The file has problems and skip_invalid was not given: nothing was written.
    `report` lists every problem; the message shows the first few."""

    LISTED = 20

    def __init__(self, report: ImportReport):
        self.report = report
        lines = report.to_text().splitlines()[1:]
        if len(lines) > self.LISTED:
            lines = lines[:self.LISTED] + [f"  ... and {len(lines) - self.LISTED} more in the report"]
        super().__init__(f"{report.kind} import from {report.source} refused, nothing was imported: "
                         f"{len(report.problems)} problems in {report.total} features "
                         "(fix them, or import the valid features with skip_invalid / --skip-invalid)\n"
                         + "\n".join(lines))


class Problems:
    """Problems found in one pass over a file, and which features they reject.

    Row problems reject their feature; area problems (a gap in a community) belong to no
    feature: they refuse the file unless skip_invalid, and are reported either way. File
    problems (the file's CRS looks wrong) reject every feature and are listed first."""

    def __init__(self, n: int):
        self.rejected = np.zeros(n, dtype=bool)
        self._rows: list[tuple[int, str | None, str]] = []
        self._areas: list[Problem] = []
        self._files: list[Problem] = []

    def add(self, row: int, field: str | None, message: str) -> None:
        self.rejected[row] = True
        self._rows.append((int(row), field, message))

    def add_area(self, where: str, message: str) -> None:
        self._areas.append(Problem(where, None, message))

    def add_file(self, field: str | None, message: str) -> None:
        """A problem of the whole file: every feature is equally suspect, so all are rejected."""
        self.rejected[:] = True
        self._files.append(Problem("file", field, message))

    def __bool__(self) -> bool:
        return bool(self._rows or self._areas or self._files)

    def listed(self, labels: Sequence[str]) -> list[Problem]:
        """File problems first, then by feature (then in the order found), area problems last."""
        ordered = sorted(range(len(self._rows)), key=lambda k: (self._rows[k][0], k))
        rows = [Problem(labels[self._rows[k][0]], self._rows[k][1], self._rows[k][2]) for k in ordered]
        return self._files + rows + self._areas


def feature_labels(index: pd.Index, keys: Sequence[str | None]) -> list[str]:
    """'feature 12 (code 430223001002015)' per row; `keys` are e.g. "code 4302…" or None."""
    return [f"feature {fid} ({key})" if key else f"feature {fid}" for fid, key in zip(index, keys)]


def make_report(kind: str, source: str, labels: Sequence[str], problems: Problems,
                imported: int) -> ImportReport:
    return ImportReport(kind=kind, source=source, total=len(labels), imported=imported,
                        rejected=int(problems.rejected.sum()), problems=problems.listed(labels))


# ---------------------------------------------------------------------------- values
def is_blank(value: object) -> bool:
    # called for every cell of a file: the common cases (None, text) are tested first
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (float, np.floating)):
        return value != value          # NaN
    return value is pd.NA or value is pd.NaT


def display(value: object) -> str | None:
    """A field value as the user typed it (a number read as 12.0 shows as 12)."""
    if is_blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def column_values(gdf: pd.DataFrame, name: str) -> list[object]:
    """A column as Python values (None where blank); all None when the file lacks it."""
    if name not in gdf.columns:
        return [None] * len(gdf)
    return [None if is_blank(v) else v for v in gdf[name].tolist()]


def text_or_none(value: object) -> str | None:
    return None if is_blank(value) else str(value).strip()


def refuse_file(kind: str, source: str, total: int, field: str | None, message: str) -> ImportRefused:
    """A refusal for the file as a whole (no features, a required field missing, no CRS)."""
    return ImportRefused(ImportReport(kind=kind, source=source, total=total, imported=0,
                                      rejected=total, problems=[Problem("file", field, message)]))


def check_frame(gdf: object, required: Sequence[str], kind: str, source: str) -> None:
    """The frame is spatial, has a CRS, holds features and carries the required fields."""
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.active_geometry_name is None:
        raise refuse_file(kind, source, len(gdf) if hasattr(gdf, "__len__") else 0, "geometry",
                          "the data has no geometry column")
    if len(gdf) == 0:
        raise refuse_file(kind, source, 0, None, "the file holds no features")
    if gdf.crs is None:
        raise refuse_file(kind, source, len(gdf), "geometry",
                          "the features have no coordinate reference system; set one (e.g. EPSG:4326)")
    missing = [f for f in required if f not in gdf.columns]
    if missing:
        fields = ", ".join(str(c) for c in gdf.columns if c != gdf.active_geometry_name)
        raise refuse_file(kind, source, len(gdf), missing[0],
                          f"no field {', '.join(missing)}; the fields are: {fields}. "
                          f"Rename the field that holds it (--map OLD={missing[0]})")


# ---------------------------------------------------------------------------- geometry
def to_wgs84(gdf: gpd.GeoDataFrame) -> np.ndarray:
    """The features' geometries in EPSG:4326, flattened to 2D (the tables are 2D)."""
    geoms = gdf.geometry if CRS.from_user_input(gdf.crs).equals(CRS.from_epsg(WGS84)) \
        else gdf.geometry.to_crs(WGS84)
    return shapely.force_2d(np.asarray(geoms.values, dtype=object))


def check_geometries(geoms: np.ndarray, allowed: set[str], expected: str,
                     problems: Problems, progress: Progress | None = None) -> np.ndarray:
    """Report missing, empty, wrongly typed, invalid and out-of-range geometries;
    returns the mask of usable ones. Works through the features in chunks so that the
    progress bar moves on a large file."""
    usable = np.zeros(len(geoms), dtype=bool)
    chunks = progress.chunks(len(geoms)) if progress else [slice(0, len(geoms))]
    for part in chunks:
        usable[part] = _check_geometry_chunk(geoms[part], part.start, allowed, expected, problems)
    return usable


def _check_geometry_chunk(geoms: np.ndarray, first_row: int, allowed: set[str], expected: str,
                          problems: Problems) -> np.ndarray:
    missing = shapely.is_missing(geoms)
    empty = ~missing & shapely.is_empty(geoms)
    types = np.array(["" if g is None else g.geom_type for g in geoms], dtype=object)
    wrong_type = ~missing & ~empty & ~np.isin(types, list(allowed))
    checkable = ~missing & ~empty & ~wrong_type
    valid = np.zeros(len(geoms), dtype=bool)
    valid[checkable] = shapely.is_valid(geoms[checkable])
    bounds = shapely.bounds(geoms)
    with np.errstate(invalid="ignore"):
        in_range = ((bounds[:, 0] >= -180) & (bounds[:, 2] <= 180)
                    & (bounds[:, 1] >= -90) & (bounds[:, 3] <= 90))
    for k in np.flatnonzero(missing):
        problems.add(first_row + k, "geometry", "no geometry")
    for k in np.flatnonzero(empty):
        problems.add(first_row + k, "geometry", "empty geometry")
    for k in np.flatnonzero(wrong_type):
        problems.add(first_row + k, "geometry", f"is a {types[k]}, expected {expected}")
    for k in np.flatnonzero(checkable & ~valid):
        problems.add(first_row + k, "geometry", f"invalid geometry: {shapely.is_valid_reason(geoms[k])}")
    out_of_range = checkable & valid & ~in_range
    for k in np.flatnonzero(out_of_range):
        problems.add(first_row + k, "geometry", "coordinates fall outside longitude/latitude after "
                                                "reprojection; is the file's coordinate reference system right?")
    return checkable & valid & in_range


@dataclass(frozen=True)
class Extent:
    """A lon/lat bounding box (EPSG:4326)."""
    minx: float
    miny: float
    maxx: float
    maxy: float

    @classmethod
    def of(cls, geoms: np.ndarray) -> Extent:
        return cls(*(float(v) for v in shapely.total_bounds(geoms)))

    def distance_km(self, other: Extent) -> float:
        """Distance between the two boxes (0 when they touch or overlap), on a sphere flattened
        at their mean latitude: rough, but a wrong CRS puts a file tens to thousands of km off."""
        dx = max(0.0, self.minx - other.maxx, other.minx - self.maxx)
        dy = max(0.0, self.miny - other.maxy, other.miny - self.maxy)
        mean_lat = math.radians((self.miny + self.maxy + other.miny + other.maxy) / 4)
        return math.hypot(dx * math.cos(mean_lat), dy) * KM_PER_DEGREE

    def __str__(self) -> str:
        return f"lon {self.minx:.4f} to {self.maxx:.4f}, lat {self.miny:.4f} to {self.maxy:.4f}"


def grid_extent(conn: psycopg.Connection) -> Extent | None:
    """The extent of the unit grids in the database (the jurisdiction); None when there are none."""
    row = conn.execute("SELECT ST_XMin(e) AS x0, ST_YMin(e) AS y0, ST_XMax(e) AS x1, ST_YMax(e) AS y1"
                       " FROM (SELECT ST_Extent(geom) AS e FROM grid) s").fetchone()
    values = [row[k] for k in ("x0", "y0", "x1", "y1")] if isinstance(row, dict) else list(row)
    return None if values[0] is None else Extent(*(float(v) for v in values))


def describe_crs(crs: object) -> str:
    """'EPSG:4549 (CGCS2000 / 3-degree Gauss-Kruger CM 120E)' for a report line."""
    crs = CRS.from_user_input(crs)
    epsg = crs.to_epsg()
    return f"EPSG:{epsg} ({crs.name})" if epsg else crs.name


def metric_transformers(geoms: np.ndarray) -> tuple[Transformer, Transformer]:
    """WGS84 ⇄ the local UTM zone of the data, for areas in square metres."""
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    lon, lat = (minx + maxx) / 2, (miny + maxy) / 2
    zone = int((lon + 180) // 6) % 60 + 1
    utm = CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)
    return (Transformer.from_crs(WGS84, utm, always_xy=True),
            Transformer.from_crs(utm, WGS84, always_xy=True))


def transform(geoms: np.ndarray, transformer: Transformer) -> np.ndarray:
    return shapely.transform(geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def lonlat_text(point: shapely.Point) -> str:
    return f"({point.x:.6f}, {point.y:.6f})"


def ewkb_hex(geoms: np.ndarray) -> np.ndarray:
    """Hex EWKB with SRID 4326: PostGIS parses it straight from COPY text."""
    return shapely.to_wkb(shapely.set_srid(geoms, WGS84), hex=True, include_srid=True)


# ---------------------------------------------------------------------------- writing
def copy_rows(conn: psycopg.Connection, table: str, columns: Sequence[str],
              rows: Iterable[Sequence[object]]) -> None:
    """Bulk-load rows into a (staging) table with COPY."""
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def lock_imports(conn: psycopg.Connection) -> None:
    """One import at a time: sequences and parent rows are derived from what is there."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('citygrid_import'))")


def record_run(conn: psycopg.Connection, report: ImportReport, *, actor: str, entity: str) -> int:
    """The import_run row and its audit row, in the caller's transaction; returns the run id."""
    row = conn.execute(
        "INSERT INTO import_run (kind, source, actor, imported, rejected, report)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (report.kind, report.source, actor, report.imported, report.rejected,
         json.dumps(report.to_json(), ensure_ascii=False))).fetchone()
    run_id = row["id"] if isinstance(row, dict) else row[0]
    audit(conn, actor=actor, action="import", entity=entity, entity_id=str(run_id),
          detail={"import_run": run_id, "source": report.source, "total": report.total,
                  "imported": report.imported, "rejected": report.rejected,
                  "problems": len(report.problems)})
    return run_id


class Progress:
    """A progress bar on stderr (silent unless asked for), stage by stage. Within a stage it
    counts features, moved on by `each` and `chunks` every PROGRESS_EVERY features, so on a
    large file the bar advances through validation instead of jumping once per stage."""

    def __init__(self, kind: str, features: int, enabled: bool):
        self._kind = kind
        self._features = features
        # Updates already come in chunks of PROGRESS_EVERY features: draw each one.
        self._bar = tqdm(total=features, desc=kind, unit="feature", file=sys.stderr,
                         disable=not enabled, leave=True, mininterval=0, miniters=1)

    def stage(self, name: str, passes: int = 1, features: int | None = None) -> None:
        """Start a stage that goes `passes` times over `features` (default: the file's)."""
        self._bar.set_description(f"{self._kind}: {name}", refresh=False)
        self._bar.reset(total=(self._features if features is None else features) * passes)

    def chunks(self, n: int) -> Iterator[slice]:
        """Slices of range(n), PROGRESS_EVERY long; the bar moves on after each is done."""
        for start in range(0, n, PROGRESS_EVERY):
            stop = min(start + PROGRESS_EVERY, n)
            yield slice(start, stop)
            self._bar.update(stop - start)

    def each(self, items: Sequence[T]) -> Iterator[T]:
        """The items one by one (one pass of the stage), moving the bar on every chunk."""
        for part in self.chunks(len(items)):
            yield from items[part]

    def advance(self, features: int) -> None:
        self._bar.update(features)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self._bar.set_description(f"{self._kind}: done", refresh=False)
            self._bar.reset(total=self._features)
            self._bar.update(self._features)
        self._bar.close()
