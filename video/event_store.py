"""What a camera worker writes: camera status, motion events (运动事件) as they start, change
and end, and dwell events (暴露垃圾, 占道经营 …) that open a case to be verified (待核实).

Each write is one transaction; a retried write finds its row by (camera, local event id) and
changes nothing twice. Snapshots are files under data_dir/cameras/{camera}/; the rows hold
their relative paths. Every event goes out on the live bus."""
from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from gis.db import audit
from gis.errors import CityGridError
from video.dwell import DwellEvent
from video.motion import Box, EventChange
from workflows import cases
from workflows.notify import LIVE_CHANNEL
from workflows.photos import store_photo

log = logging.getLogger("citygrid.video")


def _when(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def normalised(boxes: list[Box], size: tuple[int, int]) -> list[list[float]]:
    """Full-resolution (x, y, w, h) boxes → [x0, y0, x1, y1] shares of the picture."""
    w, h = size
    return [[round(x / w, 4), round(y / h, 4), round((x + bw) / w, 4), round((y + bh) / h, 4)] for x, y, bw, bh in boxes]


def _save(data_dir: Path, camera_id: int, name: str, jpeg: bytes) -> str:
    relative = Path("cameras") / str(camera_id) / name
    path = data_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(jpeg)
    tmp.replace(path)                               # a reader never sees half a picture
    return str(relative)


def _announce(conn: psycopg.Connection, event_id: int, camera_id: int, kind: str, state: str) -> None:
    conn.execute("SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, json.dumps(
        {"kind": "camera_event", "id": event_id, "camera_id": camera_id, "event": kind, "state": state})))


def set_status(conn: psycopg.Connection, camera_id: int, owner: str, *, online: bool, reason: str | None = None,
               fps: float | None = None, frame_at: dt.datetime | None = None) -> None:
    """The camera's status as its worker sees it; a change of online/offline is audited."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE camera c SET online = %(online)s, status_reason = %(reason)s, status_at = now(),"
            " measured_fps = coalesce(%(fps)s, c.measured_fps), last_frame_at = coalesce(%(at)s, c.last_frame_at)"
            " FROM camera old WHERE c.id = old.id AND c.id = %(id)s AND c.lease_owner = %(owner)s"
            " RETURNING old.online AS was", {"online": online, "reason": reason, "fps": fps, "at": frame_at,
                                             "id": camera_id, "owner": owner}).fetchone()
        if row is not None and row["was"] is not online:
            audit(conn, actor=f"video:{owner}", action="camera.online" if online else "camera.offline",
                  entity="camera", entity_id=str(camera_id), detail={"reason": reason})
            conn.execute("SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, json.dumps(
                {"kind": "camera", "id": camera_id, "online": online, "reason": reason})))


def record_motion(conn: psycopg.Connection, camera: dict, change: EventChange, size: tuple[int, int],
                  data_dir: Path) -> int:
    """A motion event's start, update or end → its row (made on the first, kept after)."""
    snapshot = _save(data_dir, camera["id"], f"{change.event_id}.jpg", change.snapshot_jpeg) \
        if change.snapshot_jpeg else None
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO camera_event (camera_id, local_id, kind, zone_id, started_at, updated_at, ended_at, boxes,"
            " score, snapshot, grid_code, location, status)"
            " SELECT c.id, %(local)s, 'motion', %(zone)s, %(start)s, now(), %(end)s, %(boxes)s, %(score)s, %(snap)s,"
            "        c.grid_code, c.location, %(status)s FROM camera c WHERE c.id = %(camera)s"
            " ON CONFLICT (camera_id, local_id) DO UPDATE SET updated_at = now(), zone_id = excluded.zone_id,"
            " ended_at = excluded.ended_at, boxes = excluded.boxes, score = excluded.score,"
            " snapshot = coalesce(excluded.snapshot, camera_event.snapshot), status = excluded.status"
            " RETURNING id",
            {"local": change.event_id, "zone": change.zone_ids[0] if change.zone_ids else None,
             "start": _when(change.started_at), "end": _when(change.ended_at) if change.ended_at else None,
             "boxes": Jsonb(normalised(change.boxes, size)), "score": change.peak_area, "snap": snapshot,
             "status": "ended" if change.kind == "end" else "open", "camera": camera["id"]}).fetchone()
        _announce(conn, row["id"], camera["id"], "motion", change.kind)
    return row["id"]


def record_dwell(conn: psycopg.Connection, camera: dict, ev: DwellEvent, size: tuple[int, int], data_dir: Path,
                 desk: cases.CaseDesk, owner: str) -> int:
    """A left object or stall: its event with before/after pictures, and a case of the zone's
    class for an operator to confirm or dismiss (核实), linked both ways."""
    after = _save(data_dir, camera["id"], f"{ev.event_id}.jpg", ev.after_jpeg)
    before = _save(data_dir, camera["id"], f"{ev.event_id}-before.jpg", ev.before_jpeg)
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO camera_event (camera_id, local_id, kind, zone_id, event_class, started_at, updated_at,"
            " boxes, snapshot, before_snapshot, grid_code, location, status)"
            " SELECT c.id, %(local)s, 'dwell', %(zone)s, %(class)s, %(start)s, now(), %(boxes)s, %(after)s,"
            "        %(before)s, c.grid_code, c.location, 'open' FROM camera c WHERE c.id = %(camera)s"
            " ON CONFLICT (camera_id, local_id) DO NOTHING RETURNING id",
            {"local": ev.event_id, "zone": ev.zone_id, "class": ev.event_class, "start": _when(ev.first_seen),
             "boxes": Jsonb(normalised([ev.box], size)), "after": after, "before": before,
             "camera": camera["id"]}).fetchone()
        if row is None:                              # written before (a retried write)
            return conn.execute("SELECT id FROM camera_event WHERE camera_id = %s AND local_id = %s",
                                (camera["id"], ev.event_id)).fetchone()["id"]
        event_id = row["id"]
        case_id = _open_case(conn, camera, ev, event_id, data_dir, desk) if ev.event_class else None
        audit(conn, actor=f"video:{owner}", action="camera_event.dwell", entity="camera_event",
              entity_id=str(event_id), detail={"camera": camera["id"], "zone": ev.zone_id,
                                               "class": ev.event_class, "case": case_id})
        _announce(conn, event_id, camera["id"], "dwell", "start")
    return event_id


def _open_case(conn, camera: dict, ev: DwellEvent, event_id: int, data_dir: Path, desk: cases.CaseDesk) -> int | None:
    minutes = max(1, round((ev.confirmed_at - ev.first_seen) / 60))
    try:
        with conn.transaction():                      # a case that cannot be filed must not cost the event
            photos = [store_photo(data_dir, ev.after_jpeg, "report", "after.jpg"),
                      store_photo(data_dir, ev.before_jpeg, "evidence", "before.jpg")]
            made = cases.report(conn, desk, cases.NewReport(
                source="video", kind="event", class_code=ev.event_class, lon=camera["lon"], lat=camera["lat"],
                description=f"摄像机 {camera['name']} 区域 {ev.zone_id}：物体停留约 {minutes} 分钟，请核实",
                reporter_name=f"camera:{camera['id']}", client_ref=f"camera-event:{event_id}"), photos=photos)
            conn.execute("UPDATE camera_event SET case_id = %s WHERE id = %s", (made.case["id"], event_id))
            return made.case["id"]
    except CityGridError as e:
        log.warning("dwell event %s of camera %s opened no case: %s", event_id, camera["id"], e)
        return None


def dismissals(conn: psycopg.Connection, camera_id: int) -> list[dict]:
    """The dismissed objects of a camera in the form video.dwell.DwellDetector restores."""
    rows = conn.execute("SELECT zone_id, box, extract(epoch FROM dismissed_at) AS at FROM camera_dismissal"
                        " WHERE camera_id = %s ORDER BY id DESC LIMIT 64", (camera_id,)).fetchall()
    out = []
    for r in rows:                                    # stored as [x0, y0, x1, y1]; the detector takes x, y, w, h
        x0, y0, x1, y1 = r["box"]
        out.append({"box": [x0, y0, x1 - x0, y1 - y0], "at": float(r["at"])})
    return out
