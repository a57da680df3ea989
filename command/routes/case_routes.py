"""Cases (案卷): intake from the console and the mobile page, lists, detail, actions, photos,
notifications."""
from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import FileResponse

from command.auth import User, require
from command.deps import db
from gis.errors import Invalid, NotFound
from gis.geojson import BBox
from workflows import cases
from workflows.case_rules import ActionRequest
from workflows.photos import MAX_BYTES, StoredPhoto, store_photo

router = APIRouter(tags=["cases"])
Reader = Annotated[User, Depends(require("case.read"))]
CaseId = Annotated[int, Path(ge=1, le=2**62)]
MAX_PHOTOS = 9


async def read_photos(request: Request, uploads: list[UploadFile] | None, kind: str) -> list[StoredPhoto]:
    """Check and store uploaded photos (EXIF stripped, thumbnails made) before the transaction."""
    uploads = [u for u in uploads or [] if u.filename]
    if len(uploads) > MAX_PHOTOS:
        raise Invalid(f"at most {MAX_PHOTOS} photos at a time")
    stored = []
    for upload in uploads:
        raw = await upload.read(MAX_BYTES + 1)
        stored.append(store_photo(request.app.state.settings.data_dir, raw, kind, upload.filename))
    return stored


@router.post("/api/cases", status_code=201)
async def report_case(request: Request, class_code: Annotated[str, Form(pattern=r"^[0-9]{4}$")],
                      user: Annotated[User, Depends(require("case.report"))], conn=Depends(db),
                      kind: Annotated[str, Form(pattern="^(event|part)$")] = "event",
                      lon: Annotated[float | None, Form(ge=-180, le=180)] = None,
                      lat: Annotated[float | None, Form(ge=-90, le=90)] = None,
                      description: Annotated[str, Form(max_length=2000)] = "",
                      address: Annotated[str | None, Form(max_length=200)] = None,
                      part_id: Annotated[str | None, Form(pattern=r"^[0-9]{16}$")] = None,
                      reporter_name: Annotated[str | None, Form(max_length=50)] = None,
                      reporter_phone: Annotated[str | None, Form(pattern=r"^[0-9+\- ]{3,20}$")] = None,
                      client_ref: Annotated[str | None, Form(pattern=r"^[A-Za-z0-9_.:-]{8,80}$")] = None,
                      photos: Annotated[list[UploadFile] | None, File()] = None):
    """Report a problem. Inspectors report from patrol (case starts 待立案); operators and shift
    leads take hotline calls (case starts 核实中 for the grid's inspector). `client_ref` makes
    a resent offline report land once."""
    # Inspectors may report wherever they stand; they keep sight of their own reports.
    source = "inspector" if user.role == "inspector" else "hotline"
    stored = await read_photos(request, photos, "report")
    made = cases.report(conn, request.app.state.desk, cases.NewReport(
        source=source, kind=kind, class_code=class_code, lon=lon, lat=lat, description=description,
        address=address, part_id=part_id, reporter_name=reporter_name, reporter_phone=reporter_phone,
        client_ref=client_ref), actor=user, photos=stored)
    return {"case": made.case, "replayed": made.replayed, "duplicates": made.duplicates}


@router.get("/api/cases")
def list_cases(request: Request, user: Reader, conn=Depends(db),
               state: Annotated[list[str] | None, Query()] = None,
               class_code: Annotated[str | None, Query(pattern=r"^[0-9]{4}$")] = None,
               area: Annotated[str | None, Query(pattern=r"^[0-9]{6}([0-9]{3}){0,3}$")] = None,
               due: Annotated[str | None, Query(pattern="^(green|yellow|red|paused)$")] = None,
               dept_id: int | None = None, source: str | None = None, bbox: str | None = None,
               mine: bool = False, before: Annotated[int | None, Query(ge=1)] = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    """Cases newest first, filtered by state, class, area, due colour, department, source,
    map box; `mine` = tasks assigned to me. Page with `before` = the last id seen."""
    box = BBox.parse(bbox)
    f = cases.CaseFilter(states=state, class_code=class_code, area=area, due=due, dept_id=dept_id, source=source,
                         bbox=(box.min_lon, box.min_lat, box.max_lon, box.max_lat) if box else None,
                         assigned_to_me=mine, before_id=before, limit=limit)
    rows = cases.list_cases(conn, request.app.state.desk, user, f)
    return {"cases": rows, "next_before": rows[-1]["id"] if len(rows) == limit else None}


@router.get("/api/cases/{case_id}")
def get_case(request: Request, case_id: CaseId, user: Reader, conn=Depends(db)):
    return cases.get_case(conn, request.app.state.desk, case_id, user)


@router.get("/api/cases/{case_id}/duplicates")
def duplicate_candidates(request: Request, case_id: CaseId, user: Reader, conn=Depends(db)):
    """Open cases of the same class within 50 m and 24 h (or on the same part): merge candidates."""
    case = cases.get_case(conn, request.app.state.desk, case_id, user)
    return cases.find_duplicates(conn, case["kind"], case["class_code"], case["lon"], case["lat"], case["part_id"],
                                 case["created_at"], exclude=case_id)


@router.post("/api/cases/{case_id}/actions/{action}")
async def case_action(request: Request, case_id: CaseId, action: Annotated[str, Path(pattern=r"^[a-z_]{2,30}$")],
                      user: Annotated[User, Depends(require("case.act"))], conn=Depends(db),
                      note: Annotated[str | None, Form(max_length=1000)] = None,
                      dept_id: Annotated[int | None, Form(ge=1)] = None,
                      merge_into: Annotated[int | None, Form(ge=1)] = None,
                      extension_kind: Annotated[str | None, Form(pattern="^(工作时|工作日|自然时)$")] = None,
                      extension_amount: Annotated[float | None, Form(gt=0, le=1000)] = None,
                      expected_version: Annotated[int | None, Form(ge=1)] = None,
                      photo_kind: Annotated[str, Form(pattern="^(before|after|evidence)$")] = "after",
                      photos: Annotated[list[UploadFile] | None, File()] = None):
    """Take one action of the transition table (file, dispatch, handle, check_pass, close…).
    409 when the case's state does not allow it; 403 for the wrong role."""
    stored = await read_photos(request, photos, photo_kind)
    return cases.act(conn, request.app.state.desk, case_id, action, user, ActionRequest(
        note=note, dept_id=dept_id, merge_into=merge_into, extension_kind=extension_kind,
        extension_amount=extension_amount, expected_version=expected_version), photos=stored)


@router.get("/api/cases/{case_id}/photos/{photo_id}")
def case_photo(request: Request, case_id: CaseId, photo_id: Annotated[int, Path(ge=1)], user: Reader,
               conn=Depends(db), thumb: bool = False):
    """A case photo, only for users who may see the case."""
    cases.get_case(conn, request.app.state.desk, case_id, user)          # raises NotFound if not visible
    row = conn.execute("SELECT path, thumb_path FROM case_photo WHERE id = %s AND case_id = %s",
                       (photo_id, case_id)).fetchone()
    if row is None:
        raise NotFound(f"photo {photo_id} does not belong to case {case_id}")
    path = FilePath(request.app.state.settings.data_dir) / (row["thumb_path"] if thumb else row["path"])
    return FileResponse(path, headers={"Cache-Control": "private, max-age=86400"})


@router.get("/api/flow")
def flow(request: Request, user: Reader):
    """States and actions with their Chinese names, for the pages."""
    f = request.app.state.desk.flow
    return {"states": {k: {"name": s.name, "final": s.final} for k, s in f.states.items()}, "actions": f.actions}


@router.get("/api/notifications")
def my_notifications(user: Reader, conn=Depends(db), unread: bool = True,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50):
    """Messages to me, my role, or my department (督办, tasks, approvals)."""
    return conn.execute(
        "SELECT n.id, n.at, n.kind, n.case_id, n.message, n.read_at FROM notification n"
        " WHERE (n.user_id = %(u)s OR (n.user_id IS NULL AND n.role = %(r)s)"
        "        OR (n.user_id IS NULL AND n.dept_id IS NOT NULL AND n.dept_id = %(d)s))"
        " AND (NOT %(unread)s OR n.read_at IS NULL) ORDER BY n.id DESC LIMIT %(n)s",
        {"u": user.id, "r": user.role, "d": user.dept_id, "unread": unread, "n": limit}).fetchall()


@router.post("/api/notifications/{notification_id}/read", status_code=204)
def mark_read(notification_id: Annotated[int, Path(ge=1)], user: Reader, conn=Depends(db)):
    with conn.transaction():
        row = conn.execute(
            "UPDATE notification SET read_at = now() WHERE id = %(id)s AND read_at IS NULL AND (user_id = %(u)s"
            " OR (user_id IS NULL AND role = %(r)s) OR (user_id IS NULL AND dept_id = %(d)s)) RETURNING id",
            {"id": notification_id, "u": user.id, "r": user.role, "d": user.dept_id}).fetchone()
        if row is None:
            raise NotFound(f"notification {notification_id} is not yours or is already read")
