"""Live pictures of a camera for the video wall and the case pages: a JPEG snapshot and an
MJPEG stream (≤ 5 fps, at a width asked for), both from one shared decode per camera
(command.live_frames). An <img> cannot send headers, so the token may come as ?token=
(kept out of the access log, as for /api/live)."""
from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from command.auth import User
from command.deps import db
from command.routes.live_routes import live_user
from gis.errors import Forbidden, NotFound
from gis.roles import ROLES
from video.frames import FrameSourceError

router = APIRouter(tags=["cameras"])


def camera_viewer(who: Annotated[tuple[User, float], Depends(live_user)]) -> User:
    user, _ = who
    if not user.can("camera.read"):
        raise Forbidden(f"the role {ROLES[user.role]} ({user.role}) may not watch cameras (camera.read)")
    return user


Viewer = Annotated[User, Depends(camera_viewer)]
CameraId = Annotated[int, Path(ge=1, le=2**62)]
Width = Annotated[int | None, Query(ge=64, le=3840, description="pixels; rounded up to 320/480/640/960/1280/1920")]
BOUNDARY = "citygrid-frame"


def _main_url(conn, camera_id: int) -> str:
    row = conn.execute("SELECT url FROM camera WHERE id = %s AND active", (camera_id,)).fetchone()
    if row is None:
        raise NotFound(f"camera {camera_id} does not exist or is switched off")
    return row["url"]


def _unavailable(camera_id: int, e: FrameSourceError) -> Response:
    return Response(status_code=503, content=f"camera {camera_id} gives no picture now ({e.reason}): {e}",
                    media_type="text/plain; charset=utf-8", headers={"Retry-After": "5"})


@router.get("/api/cameras/{camera_id}/snapshot.jpg", response_class=Response)
def snapshot(camera_id: CameraId, request: Request, user: Viewer, conn=Depends(db), width: Width = None):
    """The camera's latest picture (503 with the reason when it gives none)."""
    url = _main_url(conn, camera_id)
    try:
        _, jpeg = request.app.state.live_frames.jpeg(camera_id, url, width)
    except FrameSourceError as e:
        return _unavailable(camera_id, e)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/api/cameras/{camera_id}/mjpeg")
async def mjpeg(camera_id: CameraId, request: Request, user: Viewer, width: Width = None):
    """multipart/x-mixed-replace JPEGs at ≤ 5 fps, as an <img> on the wall shows them."""
    def look_up() -> str:                  # a pooled connection for the look-up only, not the whole stream
        with request.app.state.pool.connection() as conn:
            return _main_url(conn, camera_id)
    url = await asyncio.to_thread(look_up)
    frames = request.app.state.live_frames
    try:
        seq, first = await asyncio.to_thread(frames.jpeg, camera_id, url, width)
    except FrameSourceError as e:
        return _unavailable(camera_id, e)

    async def parts():
        nonlocal seq
        jpeg = first
        while True:
            yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                   + jpeg + b"\r\n")
            if await request.is_disconnected():
                return
            try:
                seq, jpeg = await asyncio.to_thread(frames.jpeg, camera_id, url, width, seq)
            except FrameSourceError:
                return                                   # the wall shows the camera as lost and asks again

    return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                             headers={"Cache-Control": "no-store"})
