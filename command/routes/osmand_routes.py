"""OsmAnd over HTTP: what the Traccar Client app (and OsmAnd's online tracking) sends.

    GET  /osmand?id=…&lat=…&lon=…&timestamp=…        query parameters
    POST /osmand  (query and/or URL-encoded form)      older Traccar Client
    POST /osmand  application/json                    Traccar Client 9+ (one location or a list)

Answers: 200 with an empty body (what Traccar Client expects), 400 with the reason in plain
text, 413 for a body over the limit, 404 for a device bound to no unit. Every refused request
lands in `dead_letter` with its reason, in the same transaction as the counters. Devices have
no login, so the body is read only up to the decoders' limit.

Each app holds one `OsmandIntake`: one Writer from `devices.pipeline.new_writer` (a device
directory cache, a partition keeper, the alarm handler chain — none of them safe to share
between threads), so writes take turns behind an asyncio lock; waiting requests cost a
coroutine, not a worker thread or a database connection. Decoding happens before the lock.

Counters: one `ingest_worker` row per intake named `http-…`, incremented in the transaction
of each request (received = requests, stored, duplicates, dead_letters = refused requests),
so the status page and `SELECT * FROM ingest_worker` show HTTP ingest beside the MQTT workers.

`create_osmand_app` is the small app for a port of its own (CITYGRID_OSMAND_PORT, Traccar's
5055): /osmand and `/` (Traccar Client posts to its server URL's path as given, usually `/`).
`OsmandServer` runs it in a thread; `citygrid ingest` starts it when the port is set."""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl

import psycopg
import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool

from command import http_errors
from devices.decoders import osmand
from devices.fix import MAX_PAYLOAD_BYTES, DecodeError, Fix
from devices.pipeline import new_writer
from devices.store import Batch, Received, Written, write
from gis.config import Settings
from gis.db import open_pool

log = logging.getLogger("citygrid.osmand")

MAX_FORM_FIELDS = 100
_DOC = ("Traccar Client / OsmAnd position report. 200 (empty) when stored, 400 with the reason,"
        " 404 when the device is bound to no unit (`citygrid units add … --device osmand:ID`).")


@dataclass
class Outcome:
    status: int
    text: str


class OsmandIntake:
    """Decode → write → count, for one app (see the module doc for why writes take turns)."""

    def __init__(self, settings: Settings, counter_name: str | None = None):
        self.settings = settings
        self.counter_name = counter_name or f"http-{socket.gethostname()}"
        self.writer = new_writer(settings)
        self._lock = asyncio.Lock()

    async def take(self, pool: ConnectionPool, message: Received, fixes: list[Fix] | DecodeError) -> Outcome:
        batch = Batch(received_at=message.received_at)
        if isinstance(fixes, DecodeError):
            batch.refuse(message, fixes)
        else:
            batch.add(message, fixes)
        async with self._lock:
            written = await run_in_threadpool(self._write, pool, batch)
        if batch.refused:
            error = batch.refused[0]
            return Outcome(413 if error.reason == "too_large" else 400, f"{error.reason}: {error.text}\n")
        if not written.stored and not written.duplicates:
            device = fixes[0].device if isinstance(fixes, list) and fixes else "?"
            return Outcome(404, f"unknown_device: device {device} is not bound to any unit; register it with"
                                f" `citygrid units add … --device {device}`\n")
        return Outcome(200, "")

    def _write(self, pool: ConnectionPool, batch: Batch) -> Written:
        with pool.connection() as conn:
            try:
                return self._write_counted(conn, batch)
            except (psycopg.DataError, psycopg.IntegrityError) as e:
                # A value the decoder let through but the database refuses: the message
                # still goes to the dead letters (nothing of it stored), never a 500.
                log.warning("OsmAnd request refused by the database: %s", e)
                refused = Batch(received_at=batch.received_at)
                message = batch.refused[0].message if batch.refused else batch.fixes[0][1]
                refused.refuse(message, DecodeError("unstorable", "a value cannot be stored:"
                                                    f" {e.diag.message_primary or e}"))
                batch.refused[:] = refused.refused
                return self._write_counted(conn, refused)

    def _write_counted(self, conn: psycopg.Connection, batch: Batch) -> Written:
        errors_before = getattr(self.writer.chain, "error_count", 0)
        with conn.transaction():
            written = write(conn, batch, self.writer)
            conn.execute(
                "INSERT INTO ingest_worker (name, started_at, seen_at, received, stored, duplicates, dead_letters,"
                " handler_errors) VALUES (%s, now(), now(), 1, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET"
                " seen_at = now(), received = ingest_worker.received + 1,"
                " stored = ingest_worker.stored + excluded.stored,"
                " duplicates = ingest_worker.duplicates + excluded.duplicates,"
                " dead_letters = ingest_worker.dead_letters + excluded.dead_letters,"
                " handler_errors = ingest_worker.handler_errors + excluded.handler_errors",
                (self.counter_name, len(written.stored), written.duplicates, written.dead_letters,
                 getattr(self.writer.chain, "error_count", 0) - errors_before))
        self.writer.partitions.committed(written.days)      # their partitions exist for good now
        return written


# ---------------------------------------------------------------- parsing one request
async def _read_body(request: Request) -> tuple[bytes, DecodeError | None]:
    """The body, read no further than the limit (a device has no login to stop it sending more)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
        return b"", DecodeError("too_large", f"request body is {int(declared)} bytes; the limit is"
                                            f" {MAX_PAYLOAD_BYTES}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        chunks.append(chunk)
        if size > MAX_PAYLOAD_BYTES:
            return b"".join(chunks), DecodeError("too_large", f"request body is more than {MAX_PAYLOAD_BYTES}"
                                                              f" bytes; the limit is {MAX_PAYLOAD_BYTES}")
    return b"".join(chunks), None


def _form(data: bytes, what: str) -> list[tuple[str, str]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("bad_type", f"the {what} is not UTF-8 text") from None
    try:
        return parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        raise DecodeError("too_large", f"the {what} has more than {MAX_FORM_FIELDS} fields") from None


def _is_json(content_type: str, body: bytes) -> bool:
    if content_type == "application/json" or content_type.endswith("+json"):
        return True
    return content_type in ("", "text/plain") and body.lstrip()[:1] in (b"{", b"[")


def decode_request(method: str, content_type: str, query: bytes, body: bytes,
                   received_at: dt.datetime) -> list[Fix]:
    """Query/form parameters or a JSON body to fixes; DecodeError for anything else."""
    if method == "POST" and body.strip():
        if _is_json(content_type, body):
            fixes = osmand.decode_json(body, received_at)
            return _checked(fixes)
        if content_type not in ("application/x-www-form-urlencoded", "", "text/plain"):
            raise DecodeError("unsupported", f"content type {content_type!r} is not understood; send query"
                                             " parameters, a URL-encoded form or a JSON body")
        params = dict(_form(query, "query string"))
        params.update(_form(body, "form body"))           # a form field wins over the same query field
    else:
        params = dict(_form(query, "query string"))
    return _checked(osmand.decode_params(params, received_at))


def _checked(fixes: list[Fix]) -> list[Fix]:
    # The database cannot hold a NUL in text, and a control character in a device id is a
    # corrupted or hostile request, not a device.
    for f in fixes:
        if any(ord(c) < 32 or ord(c) == 127 for c in f.device):
            raise DecodeError("bad_type", '"id" must not contain control characters')
    return fixes


async def receive(request: Request) -> Response:
    received_at = dt.datetime.now(dt.timezone.utc)
    body, too_large = await _read_body(request)
    query = request.scope.get("query_string", b"")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    payload = query + b"&" + body if query and body else query or body
    message = Received("osmand", f"{request.method} {request.url.path}", payload, received_at)
    if too_large is not None:
        decoded: list[Fix] | DecodeError = too_large
    else:
        try:
            decoded = await run_in_threadpool(decode_request, request.method, content_type, query, body,
                                              received_at)
        except DecodeError as e:
            decoded = e
    outcome = await request.app.state.osmand.take(request.app.state.pool, message, decoded)
    return PlainTextResponse(outcome.text, status_code=outcome.status)


router = APIRouter(tags=["devices"])
for method in ("GET", "POST"):       # one route each, so each has its own OpenAPI operation id
    router.add_api_route("/osmand", receive, methods=[method], summary="OsmAnd / Traccar Client position",
                         description=_DOC, response_class=PlainTextResponse, operation_id=f"osmand_{method.lower()}")

# The dedicated port also answers at its root: Traccar Client's default server URL has no path.
root_router = APIRouter(tags=["devices"])
root_router.add_api_route("/", receive, methods=["GET", "POST"], include_in_schema=False)


# ---------------------------------------------------------------- a port of its own
def create_osmand_app(settings: Settings, pool: ConnectionPool | None = None, *,
                      counter_name: str = "http-osmand") -> FastAPI:
    """Only /osmand and / — nothing that needs a login is reachable on this port."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own_pool = app.state.pool is None
        if own_pool:
            app.state.pool = open_pool(settings, max_size=min(settings.db_pool_size, 4))
        try:
            yield
        finally:
            if own_pool:
                app.state.pool.close()

    app = FastAPI(title="CityGrid Command — OsmAnd", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.settings = settings
    app.state.pool = pool
    app.state.osmand = OsmandIntake(settings, counter_name)
    http_errors.install(app)
    app.include_router(router)
    app.include_router(root_router)
    return app


class OsmandServer:
    """The OsmAnd app on its own port, served by uvicorn in a background thread."""

    def __init__(self, settings: Settings, *, counter_name: str, host: str | None = None,
                 port: int | None = None, pool: ConnectionPool | None = None):
        port = port or settings.osmand_port
        if not port:
            raise ValueError("no port for the OsmAnd server: set CITYGRID_OSMAND_PORT (Traccar uses 5055)")
        self.host, self.port = host or settings.http_host, port
        config = uvicorn.Config(create_osmand_app(settings, pool, counter_name=counter_name), host=self.host,
                                port=port, log_level="info", access_log=False,
                                timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name=f"osmand-http-{port}", daemon=True)

    def _serve(self) -> None:
        try:
            self.server.run()
        except SystemExit:                      # uvicorn's answer to a failed start; start() reports it
            pass

    def start(self, timeout: float = 30.0) -> None:
        """Start serving; RuntimeError when it does not come up (e.g. the port is taken)."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the OsmAnd server did not start on {self.host}:{self.port}"
                                   " (is the port taken? see the log above)")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(15)
