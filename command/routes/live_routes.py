"""GET /api/live: the live bus as Server-Sent Events (see command/live.py).

EventSource cannot send an Authorization header, so this endpoint — and only this one —
also takes the bearer token as `?token=`. Any logged-in user may listen: the events carry
only a kind and an id, and the details are fetched through the API, which checks visibility.

The stream: `retry:` and `event: hello` first, then `data: {"kind":…,"id":…}` per event,
`event: resync` when the browser must reload what it shows (it fell behind, or the server
lost the database for a while), `: heartbeat` comments, and `event: bye` before the server
ends it (token expired, account disabled, server stopping)."""
from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

import jwt
import psycopg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from command.auth import User, load_user, oauth2_scheme, user_id_from_token
from command.unit_access import unit_filter
from command.live import HEARTBEAT_S, RECHECK_S, LiveBus, sse
from gis.errors import Unauthenticated

router = APIRouter(tags=["live"])
READY_WAIT_S = 5.0                # how long a new stream waits for the bus to be listening


def live_user(request: Request, token: Annotated[str | None, Query(
                  description="the bearer token (EventSource cannot send headers)", max_length=4096)] = None,
              bearer: str | None = Depends(oauth2_scheme)) -> tuple[User, float]:
    """The user and the token's expiry (Unix seconds), from ?token= or the Authorization header."""
    token = token or bearer
    if not token:
        raise Unauthenticated("log in first: open /api/live?token=<access token from POST /api/auth/token>")
    user_id = user_id_from_token(token, request.app.state.settings.secret_key.get_secret_value())
    expires = float(jwt.decode(token, options={"verify_signature": False})["exp"])
    with request.app.state.pool.connection() as conn:
        return load_user(conn, user_id), expires


@router.get("/api/live", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "the event stream"}})
async def live_stream(request: Request, who: Annotated[tuple[User, float], Depends(live_user)]):
    """Server-Sent Events: `{"kind", "id"}` for every change announced on the live bus."""
    user, expires = who
    bus: LiveBus = request.app.state.live
    pool = request.app.state.pool

    def still_allowed() -> bool:
        try:
            with pool.connection() as conn:
                load_user(conn, user.id)
            return True
        except Unauthenticated:
            return False
        except psycopg.OperationalError:
            return True                         # a database blip does not log anyone out

    async def stream():
        sub = bus.subscribe(full=unit_filter(user)[0] == "true")
        try:
            try:
                await asyncio.wait_for(bus.listening.wait(), READY_WAIT_S)
            except asyncio.TimeoutError:
                pass                            # hello says so; a resync follows once it listens
            hello = {"user": user.username, "listening": bus.listening.is_set()}
            yield "retry: 3000\n" + sse(json.dumps(hello, ensure_ascii=False), "hello")
            recheck_at = time.monotonic() + RECHECK_S
            while True:
                chunk = await sub.next(HEARTBEAT_S)
                if chunk is None:
                    yield sse(json.dumps({"reason": "server_stopping"}), "bye")
                    return
                if time.time() >= expires:
                    yield sse(json.dumps({"reason": "token_expired"}), "bye")
                    return
                if time.monotonic() >= recheck_at:
                    if not await run_in_threadpool(still_allowed):
                        yield sse(json.dumps({"reason": "account_disabled"}), "bye")
                        return
                    recheck_at = time.monotonic() + RECHECK_S
                yield chunk
        finally:
            bus.unsubscribe(sub)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
