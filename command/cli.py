"""`citygrid` — the one command-line entry point."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional
from urllib.parse import urlsplit

import typer
from pydantic import ValidationError

from gis.config import Settings

app = typer.Typer(help="CityGrid Command — 数字化城市管理与应急指挥", no_args_is_help=True,
                  pretty_exceptions_enable=False)
services_app = typer.Typer(help="Local PostGIS and Mosquitto under ./.run (no Docker).", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
import_app = typer.Typer(help="Import grids and parts from GeoJSON, GeoPackage or Shapefile.", no_args_is_help=True)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo city.", no_args_is_help=True)
catalog_app = typer.Typer(help="The part/event catalog.", no_args_is_help=True)
apikey_app = typer.Typer(help="Open311 API keys.", no_args_is_help=True)
routing_app = typer.Typer(help="The routing matrix (派遣矩阵).", no_args_is_help=True)
units_app = typer.Typer(help="Patrol units (巡查单元) and their GPS devices.", no_args_is_help=True)
devices_app = typer.Typer(help="IoT field devices (物联感知设备): registry and broker credentials.", no_args_is_help=True)
for sub, name in ((services_app, "services"), (db_app, "db"), (import_app, "import"), (users_app, "users"),
                  (demo_app, "demo"), (catalog_app, "catalog"), (apikey_app, "apikey"),
                  (routing_app, "routing"), (units_app, "units"),
                  (devices_app, "devices")):
    app.add_typer(sub, name=name)


def fail(message: str, code: int = 2) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def settings() -> Settings:
    try:
        return Settings()
    except ValidationError as e:
        fail("settings refused: " + "; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors()))


def owner_connection():
    """A connection as the database owner (CLI jobs: migrations, imports, seeding)."""
    import psycopg

    from gis.db import connect

    url = settings().database_url
    try:
        return connect(url)
    except psycopg.OperationalError as e:
        fail(f"cannot reach the database at {urlsplit(url).hostname}:{urlsplit(url).port}: {e}\n"
             "Start the local stack with `citygrid services up` (or `make demo`), or set CITYGRID_DATABASE_URL.")


def local_stack(s: Settings):
    from command.services import MosquittoBroker, PostgresCluster, service_home

    url = urlsplit(s.database_url)
    if url.hostname not in ("127.0.0.1", "localhost"):
        fail(f"CITYGRID_DATABASE_URL points at {url.hostname}; local services only run on 127.0.0.1")
    cluster = PostgresCluster(service_home(s.run_dir, "pg", "postgres") / "data", s.db_port,
                              superuser=url.username or "citygrid", password=url.password)
    broker = MosquittoBroker(service_home(s.run_dir, "mosquitto", "mosquitto"), s.mqtt_port)
    return cluster, broker, url.path.lstrip("/") or "citygrid"


# ---------------------------------------------------------------- services
@services_app.command("up")
def services_up():
    """Start (creating on first use) the local PostGIS cluster and Mosquitto broker."""
    from command.services import ServiceError

    s = settings()
    cluster, broker, dbname = local_stack(s)
    import psycopg

    try:
        cluster.init()
        cluster.start()
        cluster.ensure_database(dbname)
        broker.start()
    except ServiceError as e:
        fail(str(e))
    except psycopg.OperationalError as e:
        fail(f"the local PostgreSQL at port {s.db_port} refused the credentials in CITYGRID_DATABASE_URL: {e}\n"
             f"The cluster in {cluster.data_dir} was created with other credentials; use those, or "
             "`make clean` to start over (this deletes the local data).")
    typer.echo(f"PostGIS   127.0.0.1:{s.db_port}  database {dbname}  ({cluster.data_dir})")
    typer.echo(f"Mosquitto 127.0.0.1:{s.mqtt_port}")


@services_app.command("down")
def services_down():
    """Stop the local services (data stays under the run folder)."""
    cluster, broker, _ = local_stack(settings())
    broker.stop()
    cluster.stop()
    typer.echo("stopped")


@services_app.command("status")
def services_status():
    s = settings()
    cluster, broker, _ = local_stack(s)
    pg, mq = cluster.running(), broker.running()
    typer.echo(f"PostGIS   {'running' if pg else 'stopped'}  127.0.0.1:{s.db_port}")
    typer.echo(f"Mosquitto {'running' if mq else 'stopped'}  127.0.0.1:{s.mqtt_port}")
    raise typer.Exit(0 if pg and mq else 1)


# ---------------------------------------------------------------- db
@db_app.command("migrate")
def db_migrate():
    """Apply pending migrations (each file in one transaction), load the catalog if empty and
    the device types (shipped with the code, so always brought up to date)."""
    from devices import device_types
    from gis import catalog, migrate
    from gis.errors import Invalid

    with owner_connection() as conn:
        try:
            ran = migrate.migrate(conn)
            with conn.transaction():
                if catalog.catalog_loaded(conn):
                    counts = None
                else:
                    counts = catalog.load_catalog(conn, catalog.read_catalog(settings().catalog_path), actor="cli")
            types = device_types.load_types(conn, device_types.read_types(), actor="cli")
        except (migrate.MigrationError, catalog.CatalogError, Invalid) as e:
            fail(str(e))
        if counts:
            typer.echo(f"catalog loaded: {counts['part_classes']} part classes, "
                       f"{counts['event_classes']} event classes")
    typer.echo(f"applied {len(ran)} migration(s)" + "".join(f"\n  {m.path.name}" for m in ran))
    typer.echo(f"device types: {types}")


@db_app.command("status")
def db_status():
    from gis import migrate

    with owner_connection() as conn:
        rows = migrate.status(conn)
    for m, state in rows:
        typer.echo(f"{m.version:04d} {m.name:<40} {state}")
    raise typer.Exit(0 if all(state == "applied" for _, state in rows) else 1)


@catalog_app.command("load")
def catalog_load(path: Annotated[Optional[Path], typer.Argument(help="catalog YAML (default: the seed)")] = None):
    """(Re)load the catalog file into the database, updating names and time limits."""
    from gis import catalog

    import getpass

    try:
        doc = catalog.read_catalog(path or settings().catalog_path)
        with owner_connection() as conn, conn.transaction():
            counts = catalog.load_catalog(conn, doc, actor=f"cli:{getpass.getuser()}")
    except catalog.CatalogError as e:
        fail(str(e))
    typer.echo(f"{counts['part_classes']} part classes, {counts['event_classes']} event classes")


# ---------------------------------------------------------------- import / export
def _renames(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            fail(f"--map {pair!r}: write it as old=new, e.g. --map BM=code")
        out[old] = new
    return out


def _run_import(kind: str, path: Path, layer: str | None, skip_invalid: bool, maps: list[str],
                report: Path | None, **extra) -> None:
    import getpass

    from gis.importing import ImportFileError, ImportRefused, read_layer

    if kind == "grids":
        from gis.grid_import import import_grids as run
    else:
        from gis.part_import import import_parts as run
    try:
        frame = read_layer(path, layer, _renames(maps))
    except ImportFileError as e:
        fail(f"{path}: {e}")
    with owner_connection() as conn:
        try:
            result = run(conn, frame, source=str(path), actor=f"cli:{getpass.getuser()}",
                         skip_invalid=skip_invalid, progress=sys.stderr.isatty(), **extra)
        except ImportRefused as refused:
            typer.echo(refused.report.to_text(), err=True)
            fail(f"{path}: refused, nothing was written. Fix the file, or pass --skip-invalid to import "
                 "the valid features and get a report of the rest.")
    typer.echo(f"{kind}: {result.imported} imported, {result.rejected} rejected")
    if result.problems:
        out = report or path.with_suffix(path.suffix + ".report.json")
        out.write_text(json.dumps(result.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
        typer.echo(f"report of the problems found: {out}")


Layer = Annotated[Optional[str], typer.Option(help="layer name inside a GeoPackage")]
Skip = Annotated[bool, typer.Option("--skip-invalid", help="import the valid features, report the rest")]
Maps = Annotated[list[str], typer.Option("--map", help="rename a field: old=new (repeatable)")]
Report = Annotated[Optional[Path], typer.Option(help="where to write the report of rejected features")]


@import_app.command("grids")
def import_grids_cmd(path: Path, layer: Layer = None, skip_invalid: Skip = False, map: Maps = [],  # noqa: B006
                     report: Report = None,
                     county_name: Annotated[Optional[str], typer.Option(help="the county's name")] = None,
                     gap_tolerance: Annotated[float, typer.Option(help="m²: smaller holes inside a community are"
                                                                       " not reported as gaps")] = 1.0,
                     overlap_tolerance: Annotated[float, typer.Option(help="m²: smaller overlaps between grids"
                                                                           " are ignored")] = 0.5,
                     far_away_km: Annotated[Optional[float], typer.Option(
                         help="refuse a file lying farther than this from the existing grids (a wrong CRS);"
                              " 0 turns the check off for a genuinely new area")] = None):
    """Unit grids: polygons with a 15-digit (or legacy 14-digit) `code`."""
    from gis.grid_import import PLAUSIBLE_DISTANCE_KM

    distance = PLAUSIBLE_DISTANCE_KM if far_away_km is None else (far_away_km or None)
    _run_import("grids", path, layer, skip_invalid, map, report, county_name=county_name,
                gap_tolerance_m2=gap_tolerance, overlap_tolerance_m2=overlap_tolerance,
                plausible_distance_km=distance)


@import_app.command("parts")
def import_parts_cmd(path: Path, layer: Layer = None, skip_invalid: Skip = False, map: Maps = [],  # noqa: B006
                     report: Report = None):
    """Parts: features with a 4-digit `class_code`; 16-digit ids are assigned when missing."""
    _run_import("parts", path, layer, skip_invalid, map, report)


@app.command("export")
def export(what: Annotated[str, typer.Argument(help="grids or parts")],
           out: Annotated[Path, typer.Option("--out", "-o", help="a .geojson or .gpkg file")]):
    """Export grids or parts as GeoJSON or GeoPackage."""
    from gis.errors import Invalid
    from gis.exporting import export_layer

    if not out.parent.is_dir():
        fail(f"{out.parent} is not a folder; create it first or choose another --out")
    with owner_connection() as conn:
        try:
            n = export_layer(conn, what, out)
        except Invalid as e:
            fail(str(e))
    typer.echo(f"{n} {what} written to {out}")


# ---------------------------------------------------------------- users
@users_app.command("add")
def users_add(name: str, role: Annotated[str, typer.Option(help="admin, leader, commander, shift_lead, "
                                                                "operator, dispatcher, department, inspector")],
              dept: Annotated[Optional[str], typer.Option(help="department name (department users)")] = None,
              area: Annotated[list[str], typer.Option(help="area code the user is limited to (repeatable)")] = [],  # noqa: B006
              display_name: Annotated[Optional[str], typer.Option()] = None,
              password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False):
    """Create a user. The password is read from standard input (never from the command line)."""
    import getpass

    from command.auth import create_user
    from gis.errors import CityGridError

    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass("password: ")
    with owner_connection() as conn:
        try:
            user = create_user(conn, username=name, password=password, role=role, dept=dept, areas=area,
                               display_name=display_name, actor=f"cli:{getpass.getuser()}")
        except CityGridError as e:
            fail(str(e))
    typer.echo(user.id)


# ---------------------------------------------------------------- routing
@routing_app.command("load")
def routing_load(path: Path):
    """Replace the routing matrix: area departments (属地) and class × area rules, from YAML."""
    import getpass

    import yaml

    from gis.errors import Invalid
    from workflows.routing import load_routing

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        fail(f"{path}: {e}")
    if not isinstance(doc, dict):
        fail(f"{path}: expected a mapping with area_departments and rules")
    with owner_connection() as conn:
        try:
            counts = load_routing(conn, doc, actor=f"cli:{getpass.getuser()}")
        except Invalid as e:
            fail(str(e))
    typer.echo(f"{counts['area_departments']} area departments, {counts['rules']} rules")


# ---------------------------------------------------------------- Open311 keys
@apikey_app.command("create")
def apikey_create(name: Annotated[str, typer.Argument(help="who uses the key, e.g. 12345热线平台")]):
    """Issue an Open311 API key and print it (only its hash is kept)."""
    import getpass

    from command.apikeys import create_key
    from gis.errors import Invalid

    with owner_connection() as conn:
        try:
            key = create_key(conn, name, actor=f"cli:{getpass.getuser()}")
        except Invalid as e:
            fail(str(e))
    typer.echo(key)


# ---------------------------------------------------------------- demo
@demo_app.command("seed")
def demo_seed(seed: Annotated[int, typer.Option(help="random seed of the generated city")] = 2026,
              force: Annotated[bool, typer.Option(help="re-seed even if the demo city is there")] = False):
    """Generate and load the demo county town (grids, parts, base map, demo accounts)."""
    s = settings()
    if not s.demo:
        fail("the demo city creates accounts with a known password; run it with CITYGRID_DEMO=1 only")
    from command.demo import seed_demo

    with owner_connection() as conn:
        summary = seed_demo(conn, data_dir=s.data_dir, seed=seed, force=force, log=typer.echo)
    typer.echo(summary)


# ---------------------------------------------------------------- serve
# ---------------------------------------------------------------- patrol units and ingest
@units_app.command("add")
def units_add(name: Annotated[str, typer.Option(help="the unit's name, e.g. 监督员张三 or 湘B·12345")],
              kind: Annotated[str, typer.Option(help="inspector, officer, vehicle or team")],
              dept: Annotated[Optional[str], typer.Option(help="department name")] = None,
              phone: Annotated[Optional[str], typer.Option()] = None,
              user: Annotated[Optional[str], typer.Option(help="the person's login (inspectors)")] = None,
              device: Annotated[list[str], typer.Option(help="owntracks:USER/DEVICE or osmand:ID (repeatable)")] = []):  # noqa: B006
    """Register a unit and bind its devices; prints the unit id."""
    import getpass

    from devices.registry import add_unit
    from gis.errors import CityGridError

    with owner_connection() as conn:
        try:
            unit_id = add_unit(conn, name=name, kind=kind, dept=dept, phone=phone, devices=device, username=user,
                               actor=f"cli:{getpass.getuser()}")
        except CityGridError as e:
            fail(str(e))
    typer.echo(unit_id)


@units_app.command("import")
def units_import(path: Annotated[Path, typer.Argument(
        help="CSV with columns name,kind[,dept,phone,user,devices]; devices separated by ';'")]):
    """Add many units from a CSV file, all or nothing: every bad row is named by its line
    number and nothing is written while any row is bad."""
    import getpass

    from devices.unit_import import import_units_file
    from gis.errors import CityGridError

    with owner_connection() as conn:
        try:
            ids = import_units_file(conn, path, actor=f"cli:{getpass.getuser()}")
        except CityGridError as e:               # ImportRefused lists every bad line
            fail(str(e))
    typer.echo(f"added {len(ids)} units (ids {ids[0]}–{ids[-1]})")


@devices_app.command("import")
def devices_import(path: Annotated[Path, typer.Argument(
        help="CSV with columns device_id,type,lon,lat[,part_id,dept,username,password,model,firmware]")]):
    """Register many devices from a CSV file, all or nothing: every bad row is named by its
    line number and nothing is written while any row is bad."""
    import getpass

    from devices.device_import import import_devices_file
    from gis.errors import CityGridError

    with owner_connection() as conn:
        try:
            added = import_devices_file(conn, path, actor=f"cli:{getpass.getuser()}")
        except CityGridError as e:               # ImportRefused lists every bad line
            fail(str(e))
    typer.echo(f"added {added} devices")


@devices_app.command("broker-auth")
def devices_broker_auth(
        directory: Annotated[Path, typer.Option("--dir", help="where to write passwd and acl (the broker's files)")],
        service: Annotated[list[str], typer.Option(help="a service account (ingest workers, server, simulator);"
                                                        " its password is asked for (repeatable)")] = []):  # noqa: B006
    """Write the broker's password file and ACL from the device registry: each device logs in
    as itself and publishes only on its own topics. Reload the broker afterwards (SIGHUP)."""
    from devices.broker_auth import write_broker_auth
    from gis.errors import CityGridError

    services = {name: typer.prompt(f"password for {name}", hide_input=True) for name in service}
    with owner_connection() as conn:
        try:
            devices = write_broker_auth(conn, directory, services)
        except CityGridError as e:
            fail(str(e))
    typer.echo(f"wrote {directory / 'passwd'} and {directory / 'acl'}: {devices} device login(s),"
               f" {len(services)} service account(s)")


@units_app.command("shift")
def units_shift(unit_id: Annotated[int, typer.Argument(help="the unit's id")],
                start: Annotated[str, typer.Option("--from", help="start, ISO 8601 with a zone, e.g. 2026-11-21T08:00+08:00")],
                end: Annotated[str, typer.Option("--to", help="end, ISO 8601 with a zone (at most 24 h after the start)")],
                area: Annotated[list[str], typer.Option(help="grid, community or street code (repeatable)")] = [],  # noqa: B006
                polygon: Annotated[Optional[Path], typer.Option(help="a drawn area instead: a GeoJSON Polygon file")] = None):
    """Put a unit on duty (排班) in an area; prints the shift id."""
    import datetime as dt
    import getpass

    from devices.shifts import add_shift
    from devices.unit_import import read_area_geojson
    from gis.errors import CityGridError

    times = []
    for flag, value in (("--from", start), ("--to", end)):
        try:
            times.append(dt.datetime.fromisoformat(value))
        except ValueError:
            fail(f"{flag} {value!r} is not an ISO 8601 time; write e.g. 2026-11-21T08:00+08:00")
    if area and polygon:
        fail("give the area either with --area codes or with --polygon, not both")
    with owner_connection() as conn:
        try:
            shape = read_area_geojson(polygon) if polygon else None
            shift_id = add_shift(conn, unit_id=unit_id, starts_at=times[0], ends_at=times[1], areas=area or None,
                                 polygon=shape, actor=f"cli:{getpass.getuser()}")
        except CityGridError as e:
            fail(str(e))
    typer.echo(shift_id)


@units_app.command("report")
def units_report(date: Annotated[str, typer.Option(help="the local day, YYYY-MM-DD")],
                 dept: Annotated[Optional[str], typer.Option(help="department name (default: every unit)")] = None,
                 format: Annotated[str, typer.Option(help="csv or html")] = "csv",
                 lang: Annotated[str, typer.Option(help="zh or en")] = "zh",
                 out: Annotated[Optional[Path], typer.Option("--out", "-o", help="file (default: stdout)")] = None):
    """The daily attendance report (考勤日报): one row per shift starting that day."""
    import datetime as dt

    from devices import attendance, attendance_report
    from gis.db import department_id
    from gis.errors import CityGridError

    if format not in ("csv", "html"):
        fail(f"--format must be csv or html, not {format!r}")
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        fail(f"--date {date!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-03-02")
    if out is not None and not out.parent.is_dir():
        fail(f"{out.parent} is not a folder; create it first or choose another --out")
    with owner_connection() as conn:
        try:
            report = attendance.day_report(conn, day, attendance.Rules.from_settings(settings()),
                                           dept_id=department_id(conn, dept))
            body = (attendance_report.to_csv(report, lang) if format == "csv"
                    else attendance_report.to_html(report, lang).encode("utf-8"))
        except CityGridError as e:
            fail(str(e))
    if out is None:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    else:
        out.write_bytes(body)
        s = report["summary"]
        typer.echo(f"{s['shifts']} shift(s), {s['absent']} absent, {s['late'] + s['late_early']} late,"
                   f" {s['early'] + s['late_early']} early leave; written to {out}")


# ---------------------------------------------------------------- cameras (视频监控)
cameras_app = typer.Typer(help="Cameras (视频监控): registry, view sectors and zones.", no_args_is_help=True)
app.add_typer(cameras_app, name="cameras")


def _zones_from_options(values: list[str]) -> list:
    """--zone values: each a JSON zone object or a JSON list of them."""
    zones: list = []
    for value in values:
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as e:
            fail(f"--zone {value!r} is not JSON ({e.msg}); give "
                 '\'{"id": "gate", "purpose": "no_dumping", "points": [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9]]}\'')
        zones.extend(parsed if isinstance(parsed, list) else [parsed])
    return zones


@cameras_app.command("add")
def cameras_add(name: Annotated[str, typer.Option(help="the camera's name, e.g. 联星路与建设路口东")],
                url: Annotated[str, typer.Option(help="main stream: rtsp://…, http(s)://… (MJPEG) or a file")],
                lon: Annotated[float, typer.Option(help="WGS84 longitude")],
                lat: Annotated[float, typer.Option(help="WGS84 latitude")],
                bearing: Annotated[float, typer.Option(help="where it looks: degrees clockwise from north")],
                fov: Annotated[float, typer.Option(help="horizontal field of view in degrees (360: all round)")],
                range_m: Annotated[float, typer.Option("--range", help="how far it usefully sees, metres")],
                sub_url: Annotated[Optional[str], typer.Option(help="low-resolution analysis stream")] = None,
                zone: Annotated[list[str], typer.Option(help="a zone as JSON, or a JSON list of zones (repeatable)")] = [],  # noqa: B006
                group: Annotated[Optional[str], typer.Option(help="video-wall group")] = None,
                height: Annotated[Optional[float], typer.Option(help="mounting height, metres")] = None,
                dept: Annotated[Optional[str], typer.Option(help="owning department's name")] = None):
    """Register a camera (its grid and view sector are derived); prints the camera id."""
    import getpass

    from gis.errors import CityGridError
    from video.cameras import NewCamera, add_camera

    camera = NewCamera(name=name, url=url, sub_url=sub_url, lon=lon, lat=lat, bearing_deg=bearing, fov_deg=fov,
                       range_m=range_m, height_m=height, group=group, dept=dept, zones=_zones_from_options(zone))
    with owner_connection() as conn:
        try:
            row = add_camera(conn, camera, actor=f"cli:{getpass.getuser()}")
        except CityGridError as e:
            fail(str(e))
    typer.echo(row["id"])


@cameras_app.command("list")
def cameras_list(group: Annotated[Optional[str], typer.Option(help="only this video-wall group")] = None,
                 area: Annotated[Optional[str], typer.Option(help="a county/street/community/grid code")] = None):
    """The cameras, one a line: id, name, group, grid, place, bearing/fov/range, status."""
    from video.cameras import list_cameras

    with owner_connection() as conn:
        rows = list_cameras(conn, group=group, area=area, limit=100_000)
    for c in rows:
        status = {True: "online", False: f"offline ({c['status_reason'] or '?'})", None: "not tried"}[c["online"]]
        typer.echo(f"{c['id']}\t{c['name']}\t{c['group'] or '-'}\t{c['grid_code']}\t{c['lon']:.6f},{c['lat']:.6f}"
                   f"\t{c['bearing_deg']:g}°/{c['fov_deg']:g}°/{c['range_m']:g} m\t{len(c['zones'])} zones"
                   f"\t{'active' if c['active'] else 'off'}, {status}")
    if not rows:
        typer.echo("no cameras", err=True)


# ---------------------------------------------------------------- plans (应急预案)
plans_app = typer.Typer(help="Emergency plans (应急预案) as YAML documents.", no_args_is_help=True)
app.add_typer(plans_app, name="plans")


@plans_app.command("validate")
def plans_validate(files: Annotated[list[Path], typer.Argument(help="plan documents (YAML)", exists=False)]):
    """Check plan documents; prints every problem with its line and field, exits 1 if any."""
    from workflows.plans import PlanRefused, load_plan_file

    failed = False
    for path in files:
        try:
            plan = load_plan_file(path)
        except OSError as e:
            typer.echo(f"{path}: cannot read it ({e.strerror})", err=True)
            failed = True
            continue
        except PlanRefused as e:
            typer.echo(str(e), err=True)
            failed = True
            continue
        steps = sum(len(b["steps"]) for b in plan.levels.values())
        typer.echo(f"{path}: ok — {plan.name} v{plan.version}, levels {'/'.join(plan.levels)}, {steps} steps")
    raise typer.Exit(1 if failed else 0)


@cameras_app.command("serve-streams")
def cameras_serve_streams(folder: Annotated[Optional[Path], typer.Option(
        "--dir", help="the clips to serve (default: the demo's, under the data folder)")] = None,
        port: Annotated[int, typer.Option(help="the first clip's port; the next ones count up")] = 18900):
    """Serve each .mp4 clip in a folder as an HTTP MJPEG camera (looped, real time) on
    127.0.0.1, one port each: the demo's cameras (测试视频流), as IP cameras serve them."""
    import signal
    import threading

    from command.demo_cameras import streams_dir
    from video.test_streams import MjpegServer

    clips = sorted((folder or streams_dir(settings().data_dir)).glob("*.mp4"))
    if not clips:
        fail("no .mp4 clips to serve; `citygrid demo seed` makes the demo's")
    servers = []
    for i, clip in enumerate(clips):
        try:
            servers.append(MjpegServer(clip, port + i, fps=10))
        except (OSError, RuntimeError) as e:
            fail(f"cannot serve {clip.name} on port {port + i}: {e}")
        typer.echo(f"{clip.name}\thttp://127.0.0.1:{port + i}/")
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    for server in servers:
        server.stop()


@app.command("video")
def video(name: Annotated[Optional[str], typer.Option(
        help="this worker's name (default: the host name); cameras are shared among the workers alive")] = None):
    """Run a camera worker: it takes its share of the cameras by lease, analyses their
    sub-streams (motion, left objects, stalls) and writes events, snapshots and cases; a
    worker that stops or dies hands its cameras on within one lease period (Ctrl-C/SIGTERM)."""
    import logging
    import signal
    import socket

    from video.worker import VideoWorker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    worker = VideoWorker(settings(), name or socket.gethostname())
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: worker.stop())
    worker.run()


@app.command("ingest")
def ingest(name: Annotated[Optional[str], typer.Option(
        help="this worker's stable name (default: the host name); a restarted worker must keep"
             " its name to get back the messages the broker kept for it")] = None,
           retire: Annotated[bool, typer.Option(
               help="retire the worker of this --name for good: store what the broker still keeps"
                    " for it, leave the shared subscription, end its session, exit")] = False):
    """Run an ingest worker: patrol positions from MQTT into the database. Start several,
    each with its own --name, to share the load (MQTT shared subscription); stop with
    Ctrl-C or SIGTERM. With CITYGRID_OSMAND_PORT set it also takes OsmAnd / Traccar Client
    reports over HTTP on that port (paths / and /osmand). A worker taken away for good must
    be retired (--retire), or the broker keeps dealing it a share until its session expires."""
    import logging
    import signal
    import socket

    from devices.ingest import IngestWorker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    s = settings()
    worker = IngestWorker(s, name or socket.gethostname())
    worker.retiring = retire
    http = None
    if s.osmand_port and not retire:                         # OsmAnd / Traccar Client over HTTP on a port of its own
        from command.routes.osmand_routes import OsmandServer

        http = OsmandServer(s, counter_name=f"http-{worker.name}")
        try:
            http.start()
        except RuntimeError as e:
            fail(str(e))
        logging.getLogger("citygrid.osmand").info("OsmAnd HTTP on %s:%d (counters: ingest_worker http-%s)",
                                                  http.host, http.port, worker.name)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: worker.stop())
    try:
        worker.run()
    finally:
        if http is not None:
            http.stop()


@app.command("simulate")
def simulate(inspectors: Annotated[int, typer.Option(help="inspectors walking with OwnTracks (MQTT)")] = 12,
             vehicles: Annotated[int, typer.Option(help="patrol vehicles reporting with OsmAnd (HTTP)")] = 4,
             interval: Annotated[float, typer.Option(help="seconds between two fixes of a unit")] = 2.0,
             duration: Annotated[float, typer.Option(help="stop after this many seconds (0: until Ctrl-C)")] = 0.0,
             devices: Annotated[int, typer.Option(help="IoT field devices reporting over MQTT (0: none)")] = 300,
             server: Annotated[Optional[str], typer.Option(help="where /osmand is (default: this machine's"
                                                                 " CITYGRID_HTTP_PORT)")] = None):
    """Drive simulated inspectors and vehicles around the city, with a scripted out-of-area,
    stationary, offline and SOS every cycle, and IoT devices on the city's parts with a lifted
    cover, a flooded street, a failing lamp, an overflowing bin and a detector going offline
    every half hour, answering commands (run `citygrid ingest` and `serve` alongside)."""
    import logging
    import signal
    import threading

    from devices.device_simulator import DeviceSimulation, prepare_devices
    from devices.mqtt import Publisher
    from devices.simulator import Simulation, prepare

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    s = settings()
    with owner_connection() as conn:
        try:
            walkers = prepare(conn, inspectors=inspectors, vehicles=vehicles)
            fleet = prepare_devices(conn, devices) if devices else []
        except RuntimeError as e:
            fail(str(e))
    try:
        publisher = Publisher(s.mqtt_host, s.mqtt_port, client_id="citygrid-simulator", login=s.mqtt_login)
    except OSError as e:
        fail(f"cannot reach the MQTT broker at {s.mqtt_host}:{s.mqtt_port} ({e}); run `citygrid services up`")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sim = Simulation(walkers, publisher, server or f"http://127.0.0.1:{s.http_port}", interval=interval)
    fleet_sim = DeviceSimulation(fleet, s.mqtt_host, s.mqtt_port, login=s.mqtt_login) if fleet else None
    fleet_thread = threading.Thread(target=fleet_sim.run, args=(duration, stop), daemon=True) if fleet_sim else None
    typer.echo(f"simulating {inspectors} inspectors (OwnTracks/MQTT), {vehicles} vehicles (OsmAnd/HTTP)"
               f" and {len(fleet)} IoT devices (MQTT)")
    if fleet_thread:
        fleet_thread.start()
    sim.run(duration, stop)
    stop.set()
    if fleet_thread:
        fleet_thread.join(10)
        fleet_sim.close()
    publisher.close()
    typer.echo(f"sent: {sim.sent}" + (f", devices: {fleet_sim.sent}" if fleet_sim else ""))


@app.command("serve")
def serve(host: Annotated[Optional[str], typer.Option()] = None,
          port: Annotated[Optional[int], typer.Option()] = None):
    """Run the API and web UI (port from CITYGRID_HTTP_PORT)."""
    import uvicorn

    from command.app import create_app

    s = settings()
    try:
        app_ = create_app(s)
    except ValueError as e:
        fail(f"refusing to serve: {e}")
    # Open live streams (/api/live) never end by themselves: give them a few seconds at shutdown.
    uvicorn.run(app_, host=host or s.http_host, port=port or s.http_port, log_level="info",
                timeout_graceful_shutdown=5)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
