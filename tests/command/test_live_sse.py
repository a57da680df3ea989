"""The live bus over SSE, against a real uvicorn server and a real PostgreSQL: a NOTIFY sent
from another connection reaches the browser's stream; the LISTEN connection comes back
after its backend is killed; a slow subscriber loses its oldest events, not the others'."""
from __future__ import annotations

import asyncio
import json
import logging

import httpx

from command.auth import create_user
from command.live import LiveBus
from tests.conftest import PASSWORD


def token(base: str, db, role: str, username: str, **fields) -> str:
    create_user(db, username=username, password=PASSWORD, role=role, actor="test", **fields)
    r = httpx.post(f"{base}/api/auth/token", data={"username": username, "password": PASSWORD})
    r.raise_for_status()
    return r.json()["access_token"]


def events(response: httpx.Response):
    """(event type, data) per Server-Sent Event; comments as ("comment", text)."""
    kind, data = None, []
    for line in response.iter_lines():
        if line == "":
            if kind or data:
                yield kind or "message", "\n".join(data)
            kind, data = None, []
        elif line.startswith(":"):
            yield "comment", line[1:].strip()
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def next_message(stream, wanted: str = "message") -> dict:
    for kind, data in stream:
        if kind == wanted:
            return json.loads(data)
    raise AssertionError(f"the stream ended before a {wanted!r} event")


def notify(db, payload: dict | str) -> None:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    db.execute("SELECT pg_notify('citygrid_live', %s)", (text,))


def open_stream(http: httpx.Client, base: str, **kwargs):
    return http.stream("GET", f"{base}/api/live", **kwargs)


def test_a_notify_reaches_every_logged_in_stream(server, db):
    admin = token(server, db, "admin", "admin")
    water = token(server, db, "department", "water", dept="攸县自来水公司")
    timeout = httpx.Timeout(30.0)        # a stream that stays silent this long fails the test
    with httpx.Client(timeout=timeout) as http, \
            open_stream(http, server, params={"token": admin}) as a, \
            open_stream(http, server, headers={"Authorization": f"Bearer {water}"}) as w:
        assert a.status_code == 200 and a.headers["content-type"].startswith("text/event-stream")
        stream_a, stream_w = events(a), events(w)
        assert next_message(stream_a, "hello") == {"user": "admin", "listening": True}
        assert next_message(stream_w, "hello") == {"user": "water", "listening": True}
        notify(db, "not json at all")                         # dropped, not passed on
        notify(db, {"kind": "case", "id": 42})
        notify(db, {"kind": "unit_position", "id": 7, "lon": 113.34, "lat": 27.0})
        assert next_message(stream_a) == {"kind": "case", "id": 42}
        # The command center gets the extra fields; a department only kind and id (it asks
        # the API, which checks what it may see).
        assert next_message(stream_a) == {"kind": "unit_position", "id": 7, "lon": 113.34, "lat": 27.0}
        assert next_message(stream_w) == {"kind": "case", "id": 42}
        assert next_message(stream_w) == {"kind": "unit_position", "id": 7}


def test_no_token_or_a_bad_token_is_401(server, db):
    with httpx.Client(timeout=30) as http:
        none = http.get(f"{server}/api/live")
        assert none.status_code == 401 and "?token=" in none.json()["message"]
        bad = http.get(f"{server}/api/live", params={"token": "not-a-token"})
        assert bad.status_code == 401 and "not valid" in bad.json()["message"]


def test_listen_comes_back_after_its_backend_is_killed(server, db):
    admin = token(server, db, "admin", "admin")
    with httpx.Client(timeout=httpx.Timeout(30.0)) as http, open_stream(http, server, params={"token": admin}) as r:
        stream = events(r)
        assert next_message(stream, "hello")["listening"] is True
        killed = db.execute("SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity"
                            " WHERE application_name = 'citygrid-live' AND datname = current_database()").fetchone()
        assert killed["n"] == 1
        # Listening again; whatever was sent meanwhile is gone, so the browser is told to reload.
        assert next_message(stream, "resync") == {"reason": "reconnected"}
        notify(db, {"kind": "unit_alarm", "id": 5})
        assert next_message(stream) == {"kind": "unit_alarm", "id": 5}


def test_a_slow_subscriber_loses_its_oldest_events_and_is_told(settings):
    async def scenario():
        bus = LiveBus(settings, queue_size=3)
        slow, fast = bus.subscribe(), bus.subscribe()
        got_fast = []
        for i in range(5):
            bus.publish(json.dumps({"kind": "case", "id": i}))
            got_fast.append(await fast.next(1.0))
        got_slow = [await slow.next(1.0) for _ in range(4)]
        heartbeat = await slow.next(0.01)              # nothing left: a comment keeps the line open
        await bus.stop()
        return got_fast, got_slow, heartbeat, await fast.next(1.0)

    got_fast, got_slow, heartbeat, after_stop = asyncio.run(scenario())
    assert got_fast == [f'data: {{"kind":"case","id":{i}}}\n\n' for i in range(5)]
    assert got_slow == ['event: resync\ndata: {"reason": "dropped", "dropped": 2}\n\n'] + \
        [f'data: {{"kind":"case","id":{i}}}\n\n' for i in (2, 3, 4)]
    assert heartbeat == ": heartbeat\n\n"
    assert after_stop is None                             # the stream ends when the server stops


def test_the_token_in_the_url_stays_out_of_the_access_log():
    from command.live import RedactTokens

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/api/live?token=eyJ.secret.sig&x=1", "1.1", 200), None)
    assert RedactTokens().filter(record) is True
    assert record.getMessage() == '127.0.0.1:5000 - "GET /api/live?token=***&x=1 HTTP/1.1" 200'
