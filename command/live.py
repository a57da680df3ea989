"""The live bus (实时推送): PostgreSQL NOTIFY on `citygrid_live` → Server-Sent Events.

    writers (in their transactions) ── pg_notify('citygrid_live', '{"kind":…,"id":…}')
          │  delivered on commit
    one LISTEN connection per server process (LiveBus._run, an asyncio task)
          │  fan-out, in the event loop
    one bounded queue per browser (Subscriber) ──▶ GET /api/live (text/event-stream)

- The events are small `{"kind", "id"}` messages; the browser fetches details through the
  API, which checks what this user may see. Some writers add a few fields (the handler
  chain's `unit_position` carries lon/lat/t so the map can move a marker without a fetch):
  those go only to subscribers who may see every unit (`full`); everyone else gets the bare
  `{"kind", "id"}`. Anything on the channel that is not such a message is counted and dropped.
- A slow browser never holds up the others: when its queue is full its oldest event is
  dropped, and before the next event it gets `event: resync` with how many it lost, so it
  reloads what it shows instead of trusting a picture with holes.
- The LISTEN connection is re-made when the database goes away (restart, failover, a killed
  backend), with backoff; every subscriber then gets `event: resync` (reason reconnected),
  since NOTIFYs sent while nobody listened are gone. A connection that stays silent is
  checked with a query every LIVENESS_S, and TCP keepalives catch a dead network.
- Streams send a comment every HEARTBEAT_S (proxies and browsers keep the connection open)
  and end when the token expires or the account is disabled (checked every RECHECK_S)."""
from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field

import psycopg

from gis.config import Settings
from workflows.notify import LIVE_CHANNEL

log = logging.getLogger("citygrid.live")

QUEUE_SIZE = 256                 # events a browser may fall behind before the oldest go
HEARTBEAT_S = 15.0
LIVENESS_S = 30.0
RECHECK_S = 60.0
MAX_KIND = 64


_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s]+")


class RedactTokens(logging.Filter):
    """Keeps `?token=` (the bearer token EventSource has to send in the URL) out of the
    access log: the log line shows token=*** instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "token=" in a for a in record.args):
            record.args = tuple(_TOKEN_IN_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())


def sse(data: str, event: str | None = None) -> str:
    """One Server-Sent Event (data is one line of JSON: json.dumps escapes newlines)."""
    return (f"event: {event}\n" if event else "") + f"data: {data}\n\n"


def clean(payload: str) -> tuple[str, str] | None:
    """A NOTIFY payload as the one-line JSON we pass on — (bare {"kind", "id"}, the whole
    message) — or None when it is not a {"kind", "id", …} object."""
    try:
        msg = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(msg, dict):
        return None
    kind, ident = msg.get("kind"), msg.get("id")
    if not isinstance(kind, str) or not 0 < len(kind) <= MAX_KIND:
        return None
    if not (ident is None or isinstance(ident, (int, str)) and not isinstance(ident, bool)):
        return None
    if isinstance(ident, str) and len(ident) > 200:
        return None
    bare = json.dumps({"kind": kind, "id": ident}, ensure_ascii=False, separators=(",", ":"))
    if len(msg) == 2:
        return bare, bare
    return bare, json.dumps(msg, ensure_ascii=False, separators=(",", ":"))


@dataclass(eq=False)
class Subscriber:
    """One browser's stream: a bounded queue of ready-made SSE chunks (None ends the stream)."""
    size: int = QUEUE_SIZE
    full: bool = False                   # may see every unit: gets the whole message
    queue: asyncio.Queue = field(init=False)
    dropped: int = 0

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.size)

    def offer(self, chunk: str | None) -> None:
        """Never blocks: a full queue loses its oldest chunk (and the loss is remembered)."""
        while True:
            try:
                self.queue.put_nowait(chunk)
                return
            except asyncio.QueueFull:
                try:
                    self.queue.get_nowait()
                    self.dropped += 1
                except asyncio.QueueEmpty:       # pragma: no cover - only one task touches it
                    pass

    async def next(self, timeout: float) -> str | None:
        """The next chunk to send; a heartbeat comment when nothing came within `timeout`;
        None when the stream must end."""
        if self.dropped:
            lost, self.dropped = self.dropped, 0
            return sse(json.dumps({"reason": "dropped", "dropped": lost}), "resync")
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return ": heartbeat\n\n"


class LiveBus:
    """One per server process: started and stopped by the app's lifespan."""

    def __init__(self, settings: Settings, *, queue_size: int = QUEUE_SIZE):
        self.url = settings.database_url
        self.queue_size = queue_size
        self.subscribers: set[Subscriber] = set()
        self.listening = asyncio.Event()
        self.delivered = 0                     # NOTIFYs passed on
        self.malformed = 0                     # NOTIFYs dropped for their shape
        self.reconnects = 0
        self._task: asyncio.Task | None = None
        self._closing = False

    # ------------------------------------------------------------ subscribers
    def subscribe(self, *, full: bool = False) -> Subscriber:
        sub = Subscriber(self.queue_size, full)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def publish(self, payload: str) -> None:
        """Fan one NOTIFY payload out to every subscriber (in the event loop, never blocking)."""
        cleaned = clean(payload)
        if cleaned is None:
            self.malformed += 1
            log.warning("dropped a live-bus message that is not {kind, id}: %.200r", payload)
            return
        self.delivered += 1
        bare = sse(cleaned[0])
        full = bare if cleaned[1] is cleaned[0] else sse(cleaned[1])
        for sub in list(self.subscribers):
            sub.offer(full if sub.full else bare)

    def _resync_all(self, reason: str) -> None:
        chunk = sse(json.dumps({"reason": reason}), "resync")
        for sub in list(self.subscribers):
            sub.offer(chunk)

    # ------------------------------------------------------------ the LISTEN connection
    async def start(self) -> None:
        redact_access_log()
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="citygrid-live-bus")

    async def stop(self) -> None:
        self._closing = True
        for sub in list(self.subscribers):
            sub.offer(None)                     # end every open stream
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self.listening.clear()

    async def _run(self) -> None:
        delay = 0.5
        while not self._closing:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, application_name="citygrid-live",
                    keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3)
            except psycopg.OperationalError as e:
                log.warning("live bus: cannot reach the database (%s); retrying in %.1f s",
                            str(e).strip()[:200], delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            try:
                async with conn:
                    await conn.execute(f"LISTEN {LIVE_CHANNEL}")
                    self.listening.set()
                    delay = 0.5
                    # Whatever was sent while nobody listened is gone: browsers reload.
                    self._resync_all("reconnected")
                    log.info("live bus: listening on %s", LIVE_CHANNEL)
                    while True:
                        async for note in conn.notifies(timeout=LIVENESS_S):
                            self.publish(note.payload)
                        await conn.execute("SELECT 1")       # quiet for a while: still there?
            except Exception as e:  # noqa: BLE001 - the bus outlives any one connection's failure
                self.listening.clear()
                self.reconnects += 1
                if self._closing:
                    return
                if isinstance(e, psycopg.OperationalError):
                    log.warning("live bus: lost the database (%s); reconnecting in %.1f s",
                                str(e).strip()[:200], delay)
                else:
                    log.exception("live bus: listener failed; reconnecting in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                self.listening.clear()
