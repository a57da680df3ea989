"""Open311 GeoReport v2 at /open311/v2/ (JSON and XML): the public's way in (公众上报).

Endpoints (each as `.json` or `.xml`):
  GET  discovery                      service discovery
  GET  services                       one service per event class (code "0102") and per part
                                      class (code "P0101"), from the catalog in the database
  GET  services/{service_code}        the service definition (its attributes)
  POST requests                       form-encoded (or multipart with a `media` photo); needs `api_key`
  GET  requests                       filters: service_request_id, service_code, start_date,
                                      end_date, status; newest first, at most 1000
  GET  requests/{service_request_id}  one request, as a list of one
  GET  media/{photo_id}.{ext}         the reporter's own photo of a public request

Decisions worth knowing:
- Only cases reported through this API (source 'public') are listed; inspector, hotline,
  device and video cases are the city's internal work. Reporter names, phones and e-mails
  are stored for the staff and never appear in any answer here.
- Replays: send `Idempotency-Key: <8–80 of A-Z a-z 0-9 _ . : ->` (or `attribute[client_ref]`).
  A resend with the same key answers with the case the first one made (HTTP 200 instead of
  201, header `Idempotent-Replayed: true`) and writes nothing. Keys are scoped per API key.
- We need coordinates: `address_string` alone is refused, as this server does not geocode
  street addresses. For a part service a known `attribute[part_id]` locates the report.
- `media_url` sent by a client is kept as a note in the description and never fetched
  (the server runs offline); an uploaded `media` file is checked and stored like any
  report photo (EXIF stripped), and served back at media/{id}.{ext}.
- Errors use the GeoReport format (a list of {code, description}) in the asked format, with
  the HTTP status as the code; nothing is written when a request is refused."""
from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from command.apikeys import key_owner
from command.open311_format import FALLBACK_FORMAT, FORMATS, render, render_errors
from gis import errors
from gis.db import audit
from workflows import cases
from workflows.photos import MAX_BYTES, store_photo

log = logging.getLogger("citygrid.open311")

PREFIX = "/open311/v2"
SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-03-01T00:00:00+08:00"          # when this API's shape last changed
MAX_RESULTS = 1000
DEFAULT_WINDOW = dt.timedelta(days=90)            # GeoReport v2: default and widest date range
LOCAL_TZ = cases.LOCAL_TZ
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,80}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^[0-9+\- ]{3,20}$")
PART_ID = re.compile(r"^[0-9]{16}$")
CJK = re.compile(r"[\u3400-\u9fff]")


# ---------------------------------------------------------------- errors in the GeoReport format
class GeoReportError(Exception):
    """A refusal answered as GeoReport errors with this HTTP status."""

    def __init__(self, status: int, *descriptions: str):
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = list(descriptions)


DOMAIN_STATUS = {errors.Invalid: 400, errors.NotFound: 404, errors.Forbidden: 403,
                 errors.Unauthenticated: 403, errors.Conflict: 409}


def _validation_messages(exc: RequestValidationError) -> list[str]:
    messages = []
    for problem in exc.errors():
        where = ".".join(str(p) for p in problem.get("loc", ()) if p not in ("body", "query", "path"))
        messages.append(f"{where or 'request'}: {problem.get('msg')}")
    return messages


def _as_georeport(exc: Exception) -> tuple[int, list[str]]:
    """Map any error on these routes to (HTTP status, descriptions)."""
    if isinstance(exc, GeoReportError):
        return exc.status, exc.descriptions
    if isinstance(exc, RequestValidationError):
        return 400, _validation_messages(exc)
    if isinstance(exc, StarletteHTTPException):          # e.g. a malformed multipart body
        return exc.status_code, [str(exc.detail)]
    if isinstance(exc, errors.CityGridError):
        status = next((code for cls, code in DOMAIN_STATUS.items() if isinstance(exc, cls)), 400)
        return status, [str(exc)]
    if isinstance(exc, psycopg.errors.UniqueViolation):
        # Two sends with one Idempotency-Key at the same instant: the other one made the case.
        return 409, ["the same request is being created right now; send it again to get its service_request_id"]
    if isinstance(exc, psycopg.DataError):
        return 400, [f"a value in the request cannot be stored: {exc.diag.message_primary or exc}"]
    if isinstance(exc, psycopg.OperationalError):
        log.error("database unavailable: %s", exc)
        return 503, ["the service is unavailable right now; try again shortly"]
    log.exception("Open311 request failed")
    return 500, ["general service error; the operators have been told"]


class GeoReportRoute(APIRoute):
    """Routes whose every error — ours, the database's, FastAPI's validation — answers in
    the GeoReport format, in the format the client asked for, instead of the staff API's."""

    def get_route_handler(self) -> Callable:
        handle = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:  # noqa: BLE001 — every failure must answer as GeoReport
                status, descriptions = _as_georeport(exc)
                return render_errors(request.path_params.get("fmt", FALLBACK_FORMAT), status, descriptions)

        return guarded


router = APIRouter(prefix=PREFIX, tags=["open311"], route_class=GeoReportRoute)


# ---------------------------------------------------------------- small checks
def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise GeoReportError(404, f"format {fmt!r} is not offered; ask for .json or .xml")
    return fmt


def _check_jurisdiction(conn: psycopg.Connection, jurisdiction_id: str | None) -> None:
    """One server, one jurisdiction: the county (GB/T 2260 code) or counties in the database."""
    if not jurisdiction_id:
        return
    served = [r["code"] for r in conn.execute("SELECT code FROM county ORDER BY code").fetchall()]
    if jurisdiction_id not in served:
        raise GeoReportError(404, f"jurisdiction_id {jurisdiction_id!r} is not served here; this server serves"
                                  f" {', '.join(served) or 'no county yet'} (county code, GB/T 2260)")


def _pool(request: Request):
    return request.app.state.pool


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(LOCAL_TZ).isoformat(timespec="seconds") if value else None


# ---------------------------------------------------------------- services (事件/部件 classes)
@dataclass(frozen=True)
class ServiceCode:
    """Event classes keep their 4-digit code; part classes get a 'P' in front, as the two
    catalogs share codes (event 0101 私搭乱建 vs part 0101 上水井盖)."""
    kind: str            # 'event' or 'part'
    class_code: str

    @property
    def code(self) -> str:
        return ("P" if self.kind == "part" else "") + self.class_code

    @classmethod
    def parse(cls, text: str) -> "ServiceCode | None":
        if re.fullmatch(r"[0-9]{4}", text):
            return cls("event", text)
        if re.fullmatch(r"P[0-9]{4}", text):
            return cls("part", text[1:])
        return None


_SERVICES_SQL = (
    "SELECT * FROM ("
    " SELECT 'event' AS kind, c.code, c.name, b.name AS big_name, c.limit_kind, c.limit_value"
    " FROM event_class c JOIN event_big_class b ON b.code = c.big_code"
    " UNION ALL"
    " SELECT 'part', c.code, c.name, b.name, c.limit_kind, c.limit_value"
    " FROM part_class c JOIN part_big_class b ON b.code = c.big_code) s"
)


def _service_rows(conn: psycopg.Connection, only: ServiceCode | None = None) -> list[dict]:
    if only is None:
        return conn.execute(_SERVICES_SQL + " ORDER BY kind, code").fetchall()
    return conn.execute(_SERVICES_SQL + " WHERE kind = %s AND code = %s",
                        (only.kind, only.class_code)).fetchall()


def _find_service(conn: psycopg.Connection, code: str | None) -> dict:
    if not code:
        raise GeoReportError(400, "service_code is required; GET services.json lists them")
    parsed = ServiceCode.parse(code)
    rows = _service_rows(conn, parsed) if parsed else []
    if not rows:
        raise GeoReportError(404, f"service_code {code!r} is not a service here; GET services.json lists them"
                                  " (event classes as 4 digits, part classes as P + 4 digits)")
    return rows[0]


def _limit_text(kind: str | None, value: Any, default: tuple[str, float]) -> str:
    """'4 工作时' from the class's handling limit (处置时限), or the flow's default for parts."""
    if not kind or value is None:
        kind, value = default
    number = Decimal(str(value)).normalize()
    return f"{number:f} {kind}"


def _group(row: dict) -> str:
    return row["big_name"] if row["kind"] == "event" else f"部件·{row['big_name']}"


def _service_entry(row: dict, default_limit: tuple[str, float]) -> dict:
    limit = _limit_text(row["limit_kind"], row["limit_value"], default_limit)
    if row["kind"] == "event":
        description = f"{row['big_name']}类事件：{row['name']}。立案派遣后处置时限 {limit}。"
    else:
        description = (f"{row['big_name']}类部件：{row['name']}（破损、丢失、被占用等）。"
                       f"可附 16 位部件编码。立案派遣后处置时限 {limit}。")
    return {
        "service_code": ServiceCode(row["kind"], row["code"]).code,
        "service_name": row["name"],
        "description": description,
        "metadata": True,                     # every service takes attributes (see its definition)
        "type": "realtime",                   # a case exists as soon as the POST answers
        "keywords": ",".join((row["big_name"], row["name"], "事件" if row["kind"] == "event" else "部件")),
        "group": _group(row),
    }


def _attribute(code: str, order: int, datatype_description: str, description: str) -> dict:
    """An optional free-text attribute, its keys in the spec's order."""
    return {"variable": True, "code": code, "datatype": "string", "required": False,
            "datatype_description": datatype_description, "order": order, "description": description}


PART_ID_HINT = "16 位数字：6 位区县码 + 2 位大类 + 2 位小类 + 6 位序号（GB/T 30428.2，见部件标牌）"
PART_ID_TEXT = "部件编码（选填）。给出已登记的部件编码时，可不传 lat/long，按部件位置定位。"
ADDRESS_DETAIL_TEXT = "详细位置（选填）：门牌号、楼栋、附近地标等。"


def _definition(row: dict) -> dict:
    attributes = [("part_id", PART_ID_HINT, PART_ID_TEXT)] if row["kind"] == "part" else []
    attributes.append(("address_detail", "最多 100 个字", ADDRESS_DETAIL_TEXT))
    return {"service_code": ServiceCode(row["kind"], row["code"]).code,
            "attributes": [_attribute(code, n, hint, text) for n, (code, hint, text) in enumerate(attributes, 1)]}


# ---------------------------------------------------------------- requests: what the public sees
STATUS_NOTES = {
    "verifying": "已受理，等待网格监督员现场核实",
    "reported": "已核实属实，等待立案",
    "filed": "已立案，等待派遣",
    "dispatched": "已派遣至专业部门处置",
    "in_progress": "专业部门处置中",
    "suspended": "处置暂缓（挂账）",
    "handled": "已处置完成，等待核查",
    "checking": "监督员核查中",
    "checked": "核查通过，等待结案",
    "closed": "已结案",
    "void": "已作废",
}

# Reporter names, phones and e-mails are deliberately absent from this query.
_REQUESTS_SQL = (
    "SELECT c.id, c.kind, coalesce(c.event_class, c.part_class) AS class_code,"
    " coalesce(ec.name, pc.name) AS class_name, coalesce(ec.limit_kind, pc.limit_kind) AS limit_kind,"
    " coalesce(ec.limit_value, pc.limit_value) AS limit_value, c.description, c.address, c.grid_code, c.state,"
    " c.duplicate_of, d.name AS dept_name, ST_X(c.location) AS lon, ST_Y(c.location) AS lat,"
    " c.created_at, c.updated_at, c.handle_deadline, photo.id AS photo_id, photo.path AS photo_path,"
    " outcome.note AS outcome_note"
    " FROM case_file c"
    " LEFT JOIN event_class ec ON ec.code = c.event_class LEFT JOIN part_class pc ON pc.code = c.part_class"
    " LEFT JOIN department d ON d.id = c.dept_id"
    " LEFT JOIN LATERAL (SELECT p.id, p.path FROM case_photo p WHERE p.case_id = c.id AND p.kind = 'report'"
    "                    ORDER BY p.id LIMIT 1) photo ON true"
    " LEFT JOIN LATERAL (SELECT t.note FROM case_transition t WHERE t.case_id = c.id AND c.state = 'not_filed'"
    "                    AND t.to_state = 'not_filed' ORDER BY t.id DESC LIMIT 1) outcome ON true"
    " WHERE c.source = 'public' AND {where}"
    " ORDER BY c.created_at DESC, c.id DESC LIMIT %(limit)s"
)


def _status_notes(row: dict) -> str:
    if row["state"] == "not_filed":
        return f"不予立案：{row['outcome_note']}" if row["outcome_note"] else "不予立案"
    if row["state"] == "void" and row["duplicate_of"]:
        return "重复上报，已并入同一问题的案卷一并处理"
    return STATUS_NOTES.get(row["state"], row["state"])


def _media_url(base: str, row: dict) -> str | None:
    if row["photo_id"] is None:
        return None
    return f"{base}/media/{row['photo_id']}{Path(row['photo_path']).suffix}"


def _request_entry(row: dict, base: str, default_limit: tuple[str, float]) -> dict:
    is_open = row["state"] not in cases.FINAL_STATES
    return {
        "service_request_id": str(row["id"]),
        "status": "open" if is_open else "closed",
        "status_notes": _status_notes(row),
        "service_name": row["class_name"],
        "service_code": ServiceCode(row["kind"], row["class_code"]).code,
        "description": row["description"] or None,
        "agency_responsible": row["dept_name"],
        "service_notice": f"处置时限 {_limit_text(row['limit_kind'], row['limit_value'], default_limit)}",
        "requested_datetime": _iso(row["created_at"]),
        "updated_datetime": _iso(row["updated_at"]),
        "expected_datetime": _iso(row["handle_deadline"]) if is_open else None,
        "address": row["address"],
        "address_id": row["grid_code"],        # the unit grid code (单元网格) is our address system
        "zipcode": None,
        "lat": row["lat"],
        "long": row["lon"],
        "media_url": _media_url(base, row),
    }


@dataclass
class RequestQuery:
    ids: list[int] | None = None
    codes: list[str] | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    statuses: set[str] = field(default_factory=set)

    def sql(self) -> tuple[str, dict]:
        if self.ids is not None:             # per the spec, an id list overrides every other filter
            return "c.id = ANY(%(ids)s)", {"ids": self.ids}
        conditions = ["c.created_at >= %(start)s", "c.created_at <= %(end)s"]
        params: dict[str, Any] = {"start": self.start, "end": self.end}
        if self.codes:
            conditions.append("(CASE WHEN c.kind = 'part' THEN 'P' || c.part_class ELSE c.event_class::text END)"
                              " = ANY(%(codes)s)")
            params["codes"] = self.codes
        if self.statuses == {"open"}:
            conditions.append("c.state <> ALL(%(final)s)")
        elif self.statuses == {"closed"}:
            conditions.append("c.state = ANY(%(final)s)")
        params["final"] = list(cases.FINAL_STATES)
        return " AND ".join(conditions), params


def _comma_list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _parse_ids(text: str, problems: list[str]) -> list[int]:
    ids = []
    for part in _comma_list(text):
        if not part.isdigit() or not 1 <= int(part) <= 2**62:
            problems.append(f"service_request_id {part!r} is not a request number")
        else:
            ids.append(int(part))
    return ids


def _parse_datetime(name: str, text: str | None, problems: list[str]) -> dt.datetime | None:
    """ISO 8601 (w3 profile); a time without zone is read as China time, a bare date as its midnight."""
    if not text:
        return None
    # A '+' sent unencoded in a query string arrives as a space: put the zone offset back.
    text = re.sub(r" ([0-9]{2}:?[0-9]{2})$", r"+\1", text.strip())
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        problems.append(f"{name} {text!r} is not an ISO 8601 date-time, e.g. 2026-03-02T10:00:00+08:00")
        return None
    return value if value.tzinfo else value.replace(tzinfo=LOCAL_TZ)


def _date_window(start: dt.datetime | None, end: dt.datetime | None,
                 problems: list[str]) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Default: the last 90 days; one end given: 90 days from it; never wider than 90 days."""
    if start is None and end is None:
        end = dt.datetime.now(dt.timezone.utc)
    if start is None:
        start = end - DEFAULT_WINDOW
    if end is None:
        end = start + DEFAULT_WINDOW
    if start > end:
        problems.append("start_date is after end_date")
    elif end - start > DEFAULT_WINDOW:
        problems.append("start_date and end_date may be at most 90 days apart")
    return start, end


def _parse_query(params) -> RequestQuery:
    problems: list[str] = []
    query = RequestQuery()
    if params.get("service_request_id"):
        query.ids = _parse_ids(params["service_request_id"], problems)
    query.codes = _comma_list(params.get("service_code")) or None
    for code in query.codes or []:
        if ServiceCode.parse(code) is None:
            problems.append(f"service_code {code!r} is not a service code (4 digits, or P + 4 digits for parts)")
    query.statuses = set(_comma_list(params.get("status")))
    if query.statuses - {"open", "closed"}:
        problems.append("status must be open, closed, or both comma separated")
    query.start, query.end = _date_window(_parse_datetime("start_date", params.get("start_date"), problems),
                                          _parse_datetime("end_date", params.get("end_date"), problems), problems)
    if problems:
        raise GeoReportError(400, *problems)
    return query


def _find_requests(request: Request, conn: psycopg.Connection, query: RequestQuery) -> list[dict]:
    where, params = query.sql()
    rows = conn.execute(_REQUESTS_SQL.format(where=where), {**params, "limit": MAX_RESULTS}).fetchall()
    base, default_limit = _base_url(request), request.app.state.desk.flow.default_part_limit
    return [_request_entry(row, base, default_limit) for row in rows]


# ---------------------------------------------------------------- requests: taking a new one
@dataclass
class PostedRequest:
    """A POST requests body, checked."""
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    part_id: str | None = None
    description: str = ""
    reporter_name: str | None = None
    phone: str | None = None
    email: str | None = None
    device_id: str | None = None
    account_id: str | None = None
    client_ref: str | None = None


class FormReader:
    """Reads text fields of a form, collecting every problem so one answer lists them all."""

    def __init__(self, fields: dict[str, Any]):
        self.fields = fields
        self.problems: list[str] = []

    def text(self, name: str, max_length: int) -> str | None:
        value = self.fields.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problems.append(f"{name} must be a text field, not a file")
            return None
        value = value.strip()
        if "\x00" in value:
            self.problems.append(f"{name} contains a NUL character")
            return None
        if len(value) > max_length:
            self.problems.append(f"{name} is longer than {max_length} characters")
            return None
        return value or None

    def matching(self, name: str, pattern: re.Pattern, max_length: int, hint: str) -> str | None:
        value = self.text(name, max_length)
        if value is not None and not pattern.fullmatch(value):
            self.problems.append(f"{name} {hint}")
            return None
        return value

    def coordinate(self, name: str, limit: float) -> float | None:
        value = self.text(name, 40)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and -limit <= number <= limit):
            self.problems.append(f"{name} must be a number between -{limit:g} and {limit:g} (WGS84 degrees)")
            return None
        return number


def _reporter_name(first: str | None, last: str | None) -> str | None:
    """Chinese names read family name first (张 + 三); others 'first last'."""
    parts = [p for p in (first, last) if p]
    if not parts:
        return None
    if any(CJK.search(p) for p in parts):
        return "".join(p for p in (last, first) if p)
    return " ".join(parts)


def _client_ref(form: FormReader, header: str | None, key_id: int) -> str | None:
    """The idempotency key, scoped to the API key so clients cannot collide (or probe each other)."""
    from_form = form.text("attribute[client_ref]", 80)
    header = (header or "").strip() or None
    if header and from_form and header != from_form:
        form.problems.append("Idempotency-Key and attribute[client_ref] differ; send one of them")
        return None
    value = header or from_form
    if value is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(value):
        form.problems.append("Idempotency-Key must be 8–80 characters of A–Z a–z 0–9 _ . : -")
        return None
    return f"open311:{key_id}:{value}"


def _location(form: FormReader, posted: PostedRequest, has_part: bool) -> None:
    known_problems = len(form.problems)
    posted.lat = form.coordinate("lat", 90)
    posted.lon = form.coordinate("long", 180)
    if len(form.problems) > known_problems:           # a bad number was named already
        return
    if (posted.lat is None) != (posted.lon is None):
        form.problems.append("give both lat and long")
    elif posted.lat is None and not has_part:
        by_address = form.fields.get("address_string") or form.fields.get("address_id")
        form.problems.append("location required (lat and long)" + (
            ": this server does not geocode street addresses (address_string, address_id);"
            " send lat and long in WGS84 degrees as well" if by_address else ""))


def _description(form: FormReader) -> str:
    description = form.text("description", 2000) or ""
    media_url = form.text("media_url", 500)
    if media_url:
        # Kept for the staff to look at; never fetched (the server works offline).
        description = f"{description}\n[附件链接] {media_url}".strip()
    return description


def _read_posted(fields: dict[str, Any], idempotency_header: str | None, service: dict, key_id: int) -> PostedRequest:
    form = FormReader(fields)
    posted = PostedRequest()
    posted.part_id = form.matching("attribute[part_id]", PART_ID, 16, "must be the 16-digit part id")
    if posted.part_id and service["kind"] != "part":
        form.problems.append("attribute[part_id] belongs to part services (service codes P + 4 digits)")
    _location(form, posted, has_part=posted.part_id is not None)
    address = [form.text("address_string", 200), form.text("attribute[address_detail]", 100)]
    posted.address = "，".join(a for a in address if a) or None
    posted.description = _description(form)
    posted.reporter_name = _reporter_name(form.text("first_name", 25), form.text("last_name", 25))
    posted.phone = form.matching("phone", PHONE, 20, "must be a phone number (digits, +, -, spaces)")
    posted.email = form.matching("email", EMAIL, 254, "is not an e-mail address")
    posted.device_id = form.text("device_id", 100)
    posted.account_id = form.text("account_id", 100)
    posted.client_ref = _client_ref(form, idempotency_header, key_id)
    if form.problems:
        raise GeoReportError(400, *form.problems)
    return posted


def _plain_field(request: Request, fields: dict[str, Any], name: str) -> str | None:
    """A text field of the form, or of the query string (some clients put api_key there)."""
    value = fields.get(name)
    if value is None:
        value = request.query_params.get(name)
    return value.strip() if isinstance(value, str) else None


def _check_key(conn: psycopg.Connection, api_key: str | None) -> dict:
    if not api_key:
        raise GeoReportError(403, "api_key is required to post a service request; ask the city's 数字化城管"
                                  " centre for one")
    owner = key_owner(conn, api_key)
    if owner is None:
        raise GeoReportError(403, "api_key is not valid (unknown or withdrawn)")
    return owner


def _service_notice(case: dict, service: dict, default_limit: tuple[str, float]) -> str:
    limit = _limit_text(service["limit_kind"], service["limit_value"], default_limit)
    return (f"已受理，案卷编号 {case['case_no']}。网格监督员将到现场核实，属实后立案派遣，"
            f"处置时限 {limit}。")


@dataclass
class Upload:
    filename: str
    raw: bytes


def _take_request(request: Request, fields: dict[str, Any], media: Upload | None) -> Response:
    """Check the key, the jurisdiction, the service and the fields, then open the case —
    the case and its Open311 audit row in one transaction."""
    fmt = request.path_params["fmt"]
    state = request.app.state
    with state.pool.connection() as conn:
        owner = _check_key(conn, _plain_field(request, fields, "api_key"))
        _check_jurisdiction(conn, _plain_field(request, fields, "jurisdiction_id"))
        service = _find_service(conn, _plain_field(request, fields, "service_code"))
        posted = _read_posted(fields, request.headers.get("idempotency-key"), service, owner["id"])
        photos = [store_photo(state.settings.data_dir, media.raw, "report", media.filename)] if media else []
        with conn.transaction():
            made = cases.report(conn, state.desk, cases.NewReport(
                source="public", kind=service["kind"], class_code=service["code"], lon=posted.lon, lat=posted.lat,
                description=posted.description, address=posted.address, part_id=posted.part_id,
                reporter_name=posted.reporter_name, reporter_phone=posted.phone, reporter_email=posted.email,
                client_ref=posted.client_ref), actor=None, photos=photos)
            if not made.replayed:
                audit(conn, actor=f"open311:{owner['name']}", action="open311.request", entity="case",
                      entity_id=str(made.case["id"]),
                      detail={"api_key_id": owner["id"], "device_id": posted.device_id,
                              "account_id": posted.account_id, "media": bool(photos)})
    answer = [{"service_request_id": str(made.case["id"]),
               "service_notice": _service_notice(made.case, service, state.desk.flow.default_part_limit),
               "account_id": None}]
    headers = {"Idempotent-Replayed": "true"} if made.replayed else None
    return render(fmt, answer, root="service_requests", status=200 if made.replayed else 201, headers=headers)


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def _read_form(request: Request) -> tuple[dict[str, Any], Upload | None]:
    """The form's fields and its one optional `media` file, read before any database work."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in FORM_TYPES:
        raise GeoReportError(400, "send the request form-encoded (application/x-www-form-urlencoded,"
                                  " or multipart/form-data with a media file)")
    async with request.form(max_files=1, max_fields=100) as form:
        fields = {key: value for key, value in form.multi_items() if key != "media"}
        media = form.get("media")
        if media is None or (isinstance(media, str) and not media):
            return fields, None
        if not isinstance(media, UploadFile):
            raise GeoReportError(400, "media must be an uploaded image file (multipart/form-data)")
        raw = await media.read(MAX_BYTES + 1)
        return fields, Upload(media.filename or "media", raw)


# ---------------------------------------------------------------- routes
@router.get("/discovery.{fmt}")
def discovery(request: Request, fmt: str):
    fmt = _format(fmt)
    return render(fmt, {
        "changeset": CHANGESET,
        "contact": "数字化城市管理监督指挥中心 (digital city management centre) of this city",
        "key_service": "API keys are issued by the centre's administrator (citygrid apikey create NAME);"
                       " reading services and requests needs no key",
        "endpoints": [{"specification": SPEC_URL, "url": _base_url(request), "changeset": CHANGESET,
                       "type": "production", "formats": ["text/xml", "application/json"]}],
    }, root="discovery")


@router.get("/services.{fmt}")
def services(request: Request, fmt: str):
    fmt = _format(fmt)
    with _pool(request).connection() as conn:
        _check_jurisdiction(conn, request.query_params.get("jurisdiction_id"))
        rows = _service_rows(conn)
    default_limit = request.app.state.desk.flow.default_part_limit
    return render(fmt, [_service_entry(row, default_limit) for row in rows], root="services")


@router.get("/services/{service_code}.{fmt}")
def service_definition(request: Request, service_code: str, fmt: str):
    fmt = _format(fmt)
    with _pool(request).connection() as conn:
        _check_jurisdiction(conn, request.query_params.get("jurisdiction_id"))
        row = _find_service(conn, service_code)
    return render(fmt, _definition(row), root="service_definition")


@router.post("/requests.{fmt}")
async def post_request(request: Request, fmt: str):
    _format(fmt)
    fields, media = await _read_form(request)
    # Database and image work block: off the event loop.
    return await run_in_threadpool(_take_request, request, fields, media)


@router.get("/requests.{fmt}")
def get_requests(request: Request, fmt: str):
    fmt = _format(fmt)
    query = _parse_query(request.query_params)
    with _pool(request).connection() as conn:
        _check_jurisdiction(conn, request.query_params.get("jurisdiction_id"))
        found = _find_requests(request, conn, query)
    return render(fmt, found, root="service_requests")


@router.get("/requests/{service_request_id}.{fmt}")
def get_request(request: Request, service_request_id: str, fmt: str):
    fmt = _format(fmt)
    missing = GeoReportError(404, f"service request {service_request_id!r} does not exist")
    if not service_request_id.isdigit() or not 1 <= int(service_request_id) <= 2**62:
        raise missing
    with _pool(request).connection() as conn:
        _check_jurisdiction(conn, request.query_params.get("jurisdiction_id"))
        found = _find_requests(request, conn, RequestQuery(ids=[int(service_request_id)]))
    if not found:
        raise missing
    return render(fmt, found, root="service_requests")


@router.get("/media/{photo_id}.{ext}")
def media(request: Request, photo_id: str, ext: str):
    """The first-hand photo of a public request. After/evidence photos and photos of
    internal cases are not public: they answer 404 like a photo that does not exist."""
    missing = GeoReportError(404, f"media {photo_id}.{ext} does not exist")
    if not photo_id.isdigit() or not 1 <= int(photo_id) <= 2**62:
        raise missing
    with _pool(request).connection() as conn:
        row = conn.execute("SELECT p.path FROM case_photo p JOIN case_file c ON c.id = p.case_id"
                           " WHERE p.id = %s AND p.kind = 'report' AND c.source = 'public'",
                           (int(photo_id),)).fetchone()
    if row is None or Path(row["path"]).suffix != f".{ext}":
        raise missing
    return FileResponse(Path(request.app.state.settings.data_dir) / row["path"],
                        headers={"Cache-Control": "public, max-age=86400"})


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def unknown(request: Request, rest: str):
    """Anything else under /open311/v2/ still answers as GeoReport, not as the staff API."""
    fmt = rest.rsplit(".", 1)[-1] if "." in rest else FALLBACK_FORMAT
    request.path_params["fmt"] = fmt               # lets the error answer in the asked format
    raise GeoReportError(404, f"{request.method} {PREFIX}/{rest} is not a GeoReport v2 resource here;"
                              f" see {PREFIX}/discovery.xml")
