"""Cases (案卷): intake, the transition executor, reading and listing.

Every function runs in one transaction of the caller's connection: a case is created with
its geocode, duplicate check, routing suggestion, clocks, history and audit row together,
or not at all; an action either fully happens or leaves the case as it was."""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb

from gis.db import audit
from gis.errors import Conflict, Forbidden, Invalid, NotFound
from gis.geojson import BBox, bbox_condition
from workflows import inspectors, routing
from workflows.calendar import WorkCalendar
from workflows.case_flow import CaseFlow, load_flow
from workflows.case_rules import EFFECTS, GUARDS, ActionRequest, Ctx
from workflows.clocks import CaseClock, Limits
from workflows.notify import live, notify
from workflows.photos import StoredPhoto

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
SOURCES = ("inspector", "public", "hotline", "device", "video")
DUPLICATE_RADIUS_M = 50
DUPLICATE_WINDOW = dt.timedelta(hours=24)
FINAL_STATES = ("not_filed", "closed", "void")
# Guards that depend on who you are rather than on what you send: used to list the
# actions a user may take now.
IDENTITY_GUARDS = ("assigned_inspector", "own_department")


@dataclass
class CaseDesk:
    """What every case operation needs, built once per process."""
    flow: CaseFlow
    calendar: WorkCalendar
    # Called as hook(conn, case, actor, final_state) inside the transaction that finishes a
    # case (closed, not_filed, void): how the packages above learn of it (a device alarm).
    on_finished: list[Callable[[psycopg.Connection, dict, Any, str], None]] = field(default_factory=list)

    @classmethod
    def default(cls) -> "CaseDesk":
        return cls(load_flow(), WorkCalendar.load())

    def clock(self, conn: psycopg.Connection) -> CaseClock:
        return CaseClock(conn, self.calendar, Limits.load(conn, self.flow.default_part_limit))


@dataclass
class NewReport:
    source: str
    kind: str                          # 'event' (事件) or 'part' (部件)
    class_code: str
    lon: float | None = None
    lat: float | None = None
    description: str = ""
    address: str | None = None
    part_id: str | None = None
    reporter_name: str | None = None
    reporter_phone: str | None = None
    reporter_email: str | None = None
    client_ref: str | None = None      # idempotency key (offline queue, Open311 retries)


@dataclass
class Reported:
    case: dict[str, Any]
    replayed: bool = False             # the same client_ref was seen before: nothing new was made
    duplicates: list[dict] = field(default_factory=list)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def actor_label(actor: Any | None, source: str) -> tuple[int | None, str, str]:
    if actor is None:
        return None, source, "public"
    return actor.id, actor.username, actor.role


# ---------------------------------------------------------------- intake
def _check_report(conn: psycopg.Connection, r: NewReport) -> tuple[float, float]:
    """The report's class, part and location, checked; returns (lon, lat)."""
    if r.source not in SOURCES:
        raise Invalid(f"source {r.source!r} is not one of {', '.join(SOURCES)}")
    if r.kind not in ("event", "part"):
        raise Invalid("kind must be 'event' (事件) or 'part' (部件)")
    if len(r.description) > 2000:
        raise Invalid("the description is longer than 2000 characters")
    table = "event_class" if r.kind == "event" else "part_class"
    # Both lookups are sent before either answer is read (one round trip in a pipeline).
    known = conn.execute(f"SELECT 1 FROM {table} WHERE code = %s", (r.class_code,))
    part_row = (conn.execute("SELECT class_code, ST_X(location) AS x, ST_Y(location) AS y FROM part WHERE id = %s",
                             (r.part_id,)) if r.part_id else None)
    if not known.fetchone():
        raise Invalid(f"{'event' if r.kind == 'event' else 'part'} class {r.class_code!r} is not in the catalog;"
                      " see /api/catalog for the codes")
    lon, lat = r.lon, r.lat
    if part_row is not None:
        part = part_row.fetchone()
        if part is None:
            raise Invalid(f"part {r.part_id} is not in the parts inventory")
        if r.kind != "part" or part["class_code"] != r.class_code:
            raise Invalid(f"part {r.part_id} is of class {part['class_code']}; report it as kind 'part' with that class")
        if lon is None or lat is None:
            lon, lat = part["x"], part["y"]
    if lon is None or lat is None:
        raise Invalid("give the location (lon, lat) or the part id")
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise Invalid(f"({lon}, {lat}) is not a WGS84 longitude/latitude pair")
    return lon, lat


_GRID_OF_SQL = ("SELECT code FROM grid WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))"
                " ORDER BY code LIMIT 1")


def _grid_code(row: dict | None, lon: float, lat: float) -> str:
    if row is None:
        raise Invalid(f"({lon:.6f}, {lat:.6f}) lies outside the jurisdiction's unit grids; check the location")
    return row["code"]


# The day's next number (案卷编号 = date + 5 digits), taken in the INSERT itself: the day's
# counter row stays locked from there to the commit, so the numbers have no gaps.
_CASE_NO_SQL = ("(SELECT to_char(%(day)s::date, 'YYYYMMDD') || lpad(n.last::text, 5, '0') FROM n)")
_NEXT_NUMBER_CTE = ("WITH n AS (INSERT INTO case_number (day, last) VALUES (%(day)s, 1) ON CONFLICT (day)"
                    " DO UPDATE SET last = case_number.last + 1 RETURNING last) ")


_DUPLICATE_SELECT = (
    "SELECT c.id, c.case_no, c.state, c.created_at,"
    " round(ST_Distance(c.location::geography, p::geography)::numeric, 1)::float AS distance_m"
    " FROM case_file c, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS p"
    " WHERE coalesce(c.event_class, c.part_class) = %(cls)s::bpchar AND c.kind = %(kind)s"
    " AND c.state <> ALL(%(final)s) AND c.id IS DISTINCT FROM %(exclude)s AND "
)


def find_duplicates(conn: psycopg.Connection, kind: str, class_code: str, lon: float, lat: float,
                    part_id: str | None, now: dt.datetime, exclude: int | None = None) -> list[dict]:
    """Open cases of the same class within 50 m and 24 h, or on the same part; nearest first.

    Two plain statements rather than one with OR, so each is planned onto its index
    whatever the size of the table (parameters cast to the columns' char type, or the
    comparison would be done as text): nearby through case_file_dup_idx (class + time)
    and a bounding box on the location's GiST index, the exact distance measured last;
    the same part through case_file_part_idx."""
    # 50 m as degrees, generously (longitude degrees shrink with latitude).
    pad = DUPLICATE_RADIUS_M / 111_000 / max(math.cos(math.radians(lat)), 0.2) * 1.1
    params = {"lon": lon, "lat": lat, "cls": class_code, "kind": kind, "final": list(FINAL_STATES),
              "exclude": exclude, "since": now - DUPLICATE_WINDOW, "r": DUPLICATE_RADIUS_M, "pad": pad,
              "part": part_id}
    found = conn.execute(
        _DUPLICATE_SELECT + "c.created_at >= %(since)s AND c.location && ST_Expand(p, %(pad)s)"
        " AND ST_DWithin(c.location::geography, p::geography, %(r)s) ORDER BY distance_m, c.id LIMIT 10",
        params).fetchall()
    if part_id:
        seen = {d["id"] for d in found}
        found += [d for d in conn.execute(_DUPLICATE_SELECT + "c.part_id = %(part)s::bpchar", params).fetchall()
                  if d["id"] not in seen]
        found.sort(key=lambda d: (d["distance_m"], d["id"]))
    return found[:10]


def _insert_photos(conn: psycopg.Connection, case_id: int, transition_id: int, photos: list[StoredPhoto],
                   by: str, at: dt.datetime) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO case_photo (case_id, transition_id, kind, path, thumb_path, width, height, bytes, sha256,"
            " uploaded_by, at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(case_id, transition_id, p.kind, p.path, p.thumb_path, p.width, p.height, p.bytes, p.sha256, by, at)
             for p in photos])


def _record(conn: psycopg.Connection, case_id: int, actor: Any | None, source: str, action: str,
            from_state: str | None, to_state: str, note: str | None, detail: dict, at: dt.datetime,
            returning: bool = True) -> int | None:
    """One history row, stamped with the time the action took effect; its id when asked
    (photos point at it), else nothing, so that in a pipeline no answer is waited for."""
    actor_id, name, role = actor_label(actor, source)
    cur = conn.execute(
        "INSERT INTO case_transition (case_id, at, actor_id, actor, role, action, from_state, to_state, note,"
        " detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)" + (" RETURNING id" if returning else ""),
        (case_id, at, actor_id, name, role, action, from_state, to_state, note, Jsonb(detail)))
    return cur.fetchone()["id"] if returning else None


_NEW_CASE_COLUMNS = ("kind", "event_class", "part_class", "part_id", "description", "address", "source", "state",
                     "grid_code", "suggested_dept_id", "assignee_id", "stage", "stage_limit_kind",
                     "stage_started_at", "stage_warn_at", "stage_deadline", "created_at", "updated_at")


def report(conn: psycopg.Connection, desk: CaseDesk, r: NewReport, actor: Any | None = None,
           photos: list[StoredPhoto] = (), now: dt.datetime | None = None) -> Reported:
    """Take a report and open a case: geocode, duplicate check, routing suggestion, clocks,
    history and audit — one transaction. A replayed client_ref returns the case it made.

    Everything the new row needs is worked out first, so the case is written once; the
    writes that follow need no answers and go to the server in one pipeline."""
    now = now or _now()
    # In the pipeline, statements queued before an answer is read travel together.
    with conn.transaction(), conn.pipeline():
        seen = (conn.execute("SELECT case_id FROM case_reporter WHERE client_ref = %s", (r.client_ref,))
                if r.client_ref else None)
        refused = None
        try:
            lon, lat = _check_report(conn, r)
        except Invalid as e:
            refused = e
        earlier = seen.fetchone() if seen is not None else None
        if earlier:                 # a replay answers with the case it made, even if refused now
            return Reported(_plain_case(conn, earlier["case_id"]), replayed=True)
        if refused:
            raise refused
        grid_row = conn.execute(_GRID_OF_SQL, (lon, lat))
        clock = desk.clock(conn)
        grid = _grid_code(grid_row.fetchone(), lon, lat)
        duplicates = find_duplicates(conn, r.kind, r.class_code, lon, lat, r.part_id, now)
        state = "reported" if r.source == "inspector" else "verifying"
        new = {"kind": r.kind, "event_class": r.class_code if r.kind == "event" else None,
               "part_class": r.class_code if r.kind == "part" else None, "part_id": r.part_id,
               "description": r.description.strip(), "address": r.address, "source": r.source, "state": state,
               "grid_code": grid, "created_at": now, "updated_at": now, "assignee_id": None}
        new["suggested_dept_id"] = routing.suggest(conn, new)
        new.update(clock.plan_stage(desk.flow.states[state].clock, now))
        if state == "verifying":
            new["assignee_id"] = inspectors.responsible_inspector(conn, grid, f"POINT({float(lon)!r} {float(lat)!r})")
        case = conn.execute(
            _NEXT_NUMBER_CTE + f"INSERT INTO case_file (case_no, location, {', '.join(_NEW_CASE_COLUMNS)})"
            f" VALUES ({_CASE_NO_SQL}, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326),"
            f" {', '.join(f'%({k})s' for k in _NEW_CASE_COLUMNS)}) RETURNING id, case_no",
            {**new, "lon": lon, "lat": lat, "day": now.astimezone(LOCAL_TZ).date()}).fetchone()
        case_id = case["id"]
        actor_id, name, _ = actor_label(actor, r.source)
        detail = {"grid_code": grid, "duplicates": [d["id"] for d in duplicates],
                  "suggested_dept_id": new["suggested_dept_id"]}
        clock.arm_stage(case_id, new, now)
        conn.execute("INSERT INTO case_reporter (case_id, source, user_id, name, phone, email, client_ref,"
                     " reported_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                     (case_id, r.source, actor_id, r.reporter_name or (None if actor is None else name),
                      r.reporter_phone, r.reporter_email, r.client_ref, now))
        transition_id = _record(conn, case_id, actor, r.source, "report", None, state, r.description or None,
                                detail, now, returning=bool(photos))
        if photos:
            _insert_photos(conn, case_id, transition_id, list(photos), name, now)
        audit(conn, actor=name, actor_id=actor_id, action="case.report", entity="case", entity_id=str(case_id),
              detail={"case_no": case["case_no"], "source": r.source, "state": state})
        _announce_tasks(conn, {"id": case_id, "case_no": case["case_no"]}, new, state)
        live(conn, "case", case_id)
        created = _plain_case(conn, case_id)
        return Reported(created, duplicates=duplicates)


def _announce_tasks(conn: psycopg.Connection, case: dict, changes: dict, state: str) -> None:
    """Tell who has to act next on a new case."""
    if state == "verifying":
        if changes.get("assignee_id"):
            notify(conn, kind="case.verify_task", case_id=case["id"], user_id=changes["assignee_id"],
                   message=f"核实任务：案卷 {case['case_no']}，请到现场核实")
        else:
            notify(conn, kind="case.no_inspector", case_id=case["id"], role="shift_lead",
                   message=f"案卷 {case['case_no']} 找不到在岗监督员核实，请人工指派")
    else:
        notify(conn, kind="case.to_file", case_id=case["id"], role="operator",
               message=f"新上报案卷 {case['case_no']}，请受理立案")


def _update(conn: psycopg.Connection, case_id: int, changes: dict, now: dt.datetime, *, bump: bool = True,
            state: str | None = None) -> None:
    sets = dict(changes)
    if state is not None:
        sets["state"] = state
    sets["updated_at"] = now
    columns = ", ".join(f"{k} = %({k})s" for k in sets)
    version = ", version = version + 1" if bump else ""
    conn.execute(f"UPDATE case_file SET {columns}{version} WHERE id = %(case_id)s", {**sets, "case_id": case_id})


# ---------------------------------------------------------------- who sees what
def visibility(actor: Any, alias: str = "c") -> tuple[str, dict]:
    """SQL limiting cases to those the actor may see."""
    if actor.role == "department":
        return f"{alias}.dept_id = %(v_dept)s", {"v_dept": actor.dept_id}
    areas = [a + "%" for a in (actor.areas or ())]
    if actor.role == "inspector":
        return (f"({alias}.grid_code LIKE ANY(%(v_areas)s) OR {alias}.assignee_id = %(v_uid)s OR EXISTS"
                f" (SELECT 1 FROM case_reporter r WHERE r.case_id = {alias}.id AND r.user_id = %(v_uid)s))",
                {"v_areas": areas, "v_uid": actor.id})
    if areas:
        return f"{alias}.grid_code LIKE ANY(%(v_areas)s)", {"v_areas": areas}
    return "TRUE", {}


def _locked_case(conn: psycopg.Connection, case_id: int, actor: Any) -> dict:
    where, params = visibility(actor)
    case = conn.execute(f"SELECT c.*, ST_AsText(c.location) AS location_wkt FROM case_file c"
                        f" WHERE c.id = %(id)s AND {where} FOR UPDATE OF c", {"id": case_id, **params}).fetchone()
    if case is None:
        raise NotFound(f"case {case_id} does not exist or is not yours to see")
    return case


# ---------------------------------------------------------------- actions
def act(conn: psycopg.Connection, desk: CaseDesk, case_id: int, action: str, actor: Any,
        request: ActionRequest | None = None, photos: list[StoredPhoto] = (),
        now: dt.datetime | None = None) -> dict:
    """Apply one action of the transition table; raises Conflict (409) when the case is not
    in a state that allows it, Forbidden for the wrong role, Invalid for an unmet guard."""
    now = now or _now()
    request = request or ActionRequest()
    request.photo_kinds = tuple(p.kind for p in photos)
    flow = desk.flow
    with conn.transaction():
        case = _locked_case(conn, case_id, actor)
        if request.expected_version is not None and request.expected_version != case["version"]:
            raise Conflict(f"case {case['case_no']} changed since you opened it (version {request.expected_version},"
                           f" now {case['version']}); reload it and try again")
        state = flow.states[case["state"]]
        transition = flow.transition(case["state"], action)
        if transition is None:
            possible = ", ".join(flow.actions_from(case["state"])) or "nothing (the case is finished)"
            raise Conflict(f"case {case['case_no']} is {case['state']} ({state.name}); '{action}' is not possible"
                           f" now. Possible in this state: {possible}")
        if actor.role not in transition.roles:
            raise Forbidden(f"'{action}' ({flow.actions[action]}) is for {', '.join(sorted(transition.roles))},"
                            f" not {actor.role}")
        ctx = Ctx(conn, case, actor, request, now, desk.clock(conn))
        for name in transition.guards:
            reason = GUARDS[name](ctx)
            if reason:
                raise Invalid(f"cannot {action} case {case['case_no']}: {reason}")
        for name in transition.effects:
            EFFECTS[name](ctx)
        target = flow.states[transition.target]
        if transition.target != case["state"]:
            if target.final:
                conn.execute("UPDATE case_timer SET cancelled = true WHERE case_id = %s AND fired_at IS NULL",
                             (case_id,))
                ctx.changes.update(stage=None, stage_warn_at=None, stage_deadline=None, stage_started_at=None)
            elif target.clock != state.clock or target.clock:
                ctx.changes.update(ctx.clock.enter_stage(case, target.clock, now))
        _update(conn, case_id, ctx.changes, now, state=transition.target)
        transition_id = _record(conn, case_id, actor, "", action, case["state"], transition.target,
                                request.note, ctx.detail, now)
        _insert_photos(conn, case_id, transition_id, list(photos), actor.username, now)
        if target.final and transition.target != case["state"]:
            for hook in desk.on_finished:
                hook(conn, case, actor, transition.target)
        audit(conn, actor=actor.username, actor_id=actor.id, action=f"case.{action}", entity="case",
              entity_id=str(case_id), detail={"from": case["state"], "to": transition.target, **ctx.detail})
        if transition.target == "filed" and action == "return":
            notify(conn, kind="case.returned", case_id=case_id, role="dispatcher",
                   message=f"案卷 {case['case_no']} 被退回，请重新派遣")
        elif transition.target == "filed":
            notify(conn, kind="case.to_dispatch", case_id=case_id, role="dispatcher",
                   message=f"案卷 {case['case_no']} 已立案，请派遣")
        elif transition.target == "handled":
            notify(conn, kind="case.to_check", case_id=case_id, role="operator",
                   message=f"案卷 {case['case_no']} 已处置完成，请派发核查")
        elif transition.target == "checked":
            notify(conn, kind="case.to_close", case_id=case_id, role="shift_lead",
                   message=f"案卷 {case['case_no']} 核查通过，请结案")
        live(conn, "case", case_id)
    try:
        return get_case(conn, desk, case_id, actor)
    except NotFound:
        # The action itself took the case out of the user's sight (a department returning
        # it): answer with what they just did, not with an error.
        row = _plain_case(conn, case_id)
        row["state_name"] = flow.states[row["state"]].name
        return row


def allowed_actions(flow: CaseFlow, case: dict, actor: Any) -> list[dict]:
    """The actions this user may take on this case now (role and identity guards)."""
    out = []
    for action in flow.actions_from(case["state"], actor.role):
        transition = flow.transition(case["state"], action)
        if "assigned_inspector" in transition.guards:
            if case["assignee_id"] is not None and case["assignee_id"] != actor.id:
                continue
            if case["assignee_id"] is None and not any(case["grid_code"].startswith(a) for a in actor.areas or ()):
                continue
        if "own_department" in transition.guards and case["dept_id"] != actor.dept_id:
            continue
        out.append({"action": action, "name": flow.actions[action],
                    "needs": [g for g in transition.guards if g not in IDENTITY_GUARDS]})
    return out


# ---------------------------------------------------------------- reading
DUE_SQL = (
    "CASE WHEN {c}.state = ANY(%(final_states)s) THEN NULL"
    " WHEN {c}.paused_at IS NOT NULL THEN 'paused'"
    " WHEN {c}.stage_deadline < %(now)s OR ({c}.state = ANY(%(handling_states)s) AND {c}.handle_deadline < %(now)s)"
    " THEN 'red'"
    " WHEN {c}.stage_warn_at < %(now)s OR ({c}.state = ANY(%(handling_states)s) AND {c}.handle_warn_at < %(now)s)"
    " THEN 'yellow' ELSE 'green' END"
)


def due_params(flow: CaseFlow, now: dt.datetime) -> dict:
    return {"now": now, "final_states": list(FINAL_STATES),
            "handling_states": [k for k, s in flow.states.items() if s.handling and not s.paused]}


_CASE_SELECT = (
    "SELECT c.id, c.case_no, c.kind, coalesce(c.event_class, c.part_class) AS class_code,"
    " coalesce(ec.name, pc.name) AS class_name, c.part_id, c.description, c.address, c.source, c.state,"
    " c.grid_code, g.name AS grid_name, ST_X(c.location) AS lon, ST_Y(c.location) AS lat,"
    " c.dept_id, d.name AS dept_name, c.suggested_dept_id, sd.name AS suggested_dept_name,"
    " c.assignee_id, u.display_name AS assignee_name, c.duplicate_of, c.rework_count, c.return_count,"
    " c.stage, c.stage_deadline, c.stage_warn_at, c.handle_deadline, c.handle_warn_at, c.paused_at,"
    " c.version, c.created_at, c.updated_at, c.closed_at, {due} AS due"
    " FROM case_file c JOIN grid g ON g.code = c.grid_code"
    " LEFT JOIN event_class ec ON ec.code = c.event_class LEFT JOIN part_class pc ON pc.code = c.part_class"
    " LEFT JOIN department d ON d.id = c.dept_id LEFT JOIN department sd ON sd.id = c.suggested_dept_id"
    " LEFT JOIN app_user u ON u.id = c.assignee_id"
)


def _plain_case(conn: psycopg.Connection, case_id: int) -> dict:
    row = conn.execute(_CASE_SELECT.format(due="NULL") + " WHERE c.id = %(id)s", {"id": case_id}).fetchone()
    return row


def get_case(conn: psycopg.Connection, desk: CaseDesk, case_id: int, actor: Any,
             now: dt.datetime | None = None) -> dict:
    now = now or _now()
    where, params = visibility(actor)
    case = conn.execute(_CASE_SELECT.format(due=DUE_SQL.format(c="c")) + f" WHERE c.id = %(id)s AND {where}",
                        {"id": case_id, **params, **due_params(desk.flow, now)}).fetchone()
    if case is None:
        raise NotFound(f"case {case_id} does not exist or is not yours to see")
    case["state_name"] = desk.flow.states[case["state"]].name
    case["timeline"] = conn.execute(
        "SELECT id, at, actor, role, action, from_state, to_state, note, detail FROM case_transition"
        " WHERE case_id = %s ORDER BY id", (case_id,)).fetchall()
    for entry in case["timeline"]:
        entry["action_name"] = desk.flow.actions.get(entry["action"], entry["action"])
    case["photos"] = conn.execute("SELECT id, kind, width, height, uploaded_by, at, transition_id FROM case_photo"
                                  " WHERE case_id = %s ORDER BY id", (case_id,)).fetchall()
    staff = actor.role not in ("department",)
    case["reporters"] = conn.execute(
        "SELECT source, name, " + ("phone, " if staff else "") + "reported_at FROM case_reporter"
        " WHERE case_id = %s ORDER BY id", (case_id,)).fetchall()
    case["extensions"] = conn.execute("SELECT id, limit_kind, amount::float, reason, requested_by, requested_at,"
                                      " status, decided_by, decided_at FROM case_extension WHERE case_id = %s"
                                      " ORDER BY id", (case_id,)).fetchall()
    case["allowed_actions"] = allowed_actions(desk.flow, case, actor)
    return case


@dataclass
class CaseFilter:
    states: list[str] | None = None
    class_code: str | None = None
    area: str | None = None
    due: str | None = None               # green / yellow / red
    dept_id: int | None = None
    source: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    assigned_to_me: bool = False
    before_id: int | None = None         # keyset paging, newest first
    limit: int = 100


# A list row: what the console list and map markers show (parameters of due_params()).
LIST_SELECT = (
    "SELECT c.id, c.case_no, coalesce(c.event_class, c.part_class) AS class_code,"
    " coalesce(ec.name, pc.name) AS class_name, c.state, c.source, c.grid_code, c.dept_id,"
    " ST_X(c.location) AS lon, ST_Y(c.location) AS lat, c.created_at, c.stage_deadline, c.handle_deadline,"
    f" {DUE_SQL.format(c='c')} AS due"
    " FROM case_file c LEFT JOIN event_class ec ON ec.code = c.event_class"
    " LEFT JOIN part_class pc ON pc.code = c.part_class"
)


def list_cases(conn: psycopg.Connection, desk: CaseDesk, actor: Any, f: CaseFilter,
               now: dt.datetime | None = None) -> list[dict]:
    now = now or _now()
    if not 1 <= f.limit <= 1000:
        raise Invalid("limit must be between 1 and 1000")
    where, params = visibility(actor)
    conditions = [where]
    params.update(due_params(desk.flow, now), limit=f.limit)
    if f.due or (f.states and not set(f.states) & set(FINAL_STATES)):
        # Spelled out so the planner may use the partial index of open cases (0004).
        conditions.append("c.state <> ALL(%(final_states)s)")
    if f.states:
        unknown = set(f.states) - set(desk.flow.states)
        if unknown:
            raise Invalid(f"unknown state(s) {', '.join(sorted(unknown))}; states are {', '.join(desk.flow.states)}")
        conditions.append("c.state = ANY(%(states)s)")
        params["states"] = f.states
    # Plain equality/range filters: (SQL, parameter name, value or None when not asked for).
    for sql, name, value in (
            ("coalesce(c.event_class, c.part_class) = %(cls)s", "cls", f.class_code),
            ("c.grid_code LIKE %(area)s", "area", f.area + "%" if f.area else None),
            ("c.dept_id = %(dept)s", "dept", f.dept_id),
            ("c.source = %(source)s", "source", f.source),
            ("c.assignee_id = %(me)s", "me", actor.id if f.assigned_to_me else None),
            ("c.id < %(before)s", "before", f.before_id)):
        if value is not None:
            conditions.append(sql)
            params[name] = value
    if f.bbox:
        box_sql, box_params = bbox_condition("c.location", BBox(*f.bbox))
        conditions.append(box_sql)
        params.update(box_params)
    if f.due:
        if f.due not in ("green", "yellow", "red", "paused"):
            raise Invalid("due must be green, yellow, red or paused")
        conditions.append(f"({DUE_SQL.format(c='c')}) = %(due)s")
        params["due"] = f.due
    rows = conn.execute(
        LIST_SELECT + f" WHERE {' AND '.join(conditions)} ORDER BY c.id DESC LIMIT %(limit)s", params,
        # A prepared statement would get one generic plan for every box size; plan each call.
        prepare=False).fetchall()
    for row in rows:
        row["state_name"] = desk.flow.states[row["state"]].name
    return rows
