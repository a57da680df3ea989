"""Cases for the demo city: reported over the past days and walked through the real
transition table at past times, so a fresh demo shows every state, due colours, overdue
escalations (fired by the timer loop when the server starts) and evaluation scores."""
from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import shapely
from PIL import Image, ImageDraw

from command.auth import create_user, load_user
from workflows.case_rules import ActionRequest
from workflows.cases import CaseDesk, NewReport, act, report
from workflows.photos import StoredPhoto, store_photo

# How far each demo case gets: (last state reached, how many cases).
PLAN = [("verifying", 8), ("reported", 8), ("filed", 6), ("dispatched", 6), ("in_progress", 10),
        ("handled", 4), ("checking", 4), ("checked", 3), ("closed", 26), ("not_filed", 3), ("void", 2)]
EVENT_CLASSES = ["0102", "0103", "0104", "0201", "0303", "0304", "0401", "0405", "0406", "0501", "0502",
                 "0504", "0505", "0506"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚"


@dataclass(frozen=True)
class StandIn:
    """The department that handles a demo case acts through this stand-in (no login)."""
    dept_id: int
    username: str
    id: None = None
    role: str = "department"
    areas: tuple = ()


def _person(rng: np.random.Generator) -> str:
    return SURNAMES[rng.integers(len(SURNAMES))] + GIVEN[rng.integers(len(GIVEN))]


def community_inspectors(conn: psycopg.Connection, password: str, rng: np.random.Generator) -> dict[str, int]:
    """One inspector (监督员) per community, bound to its grids: community code → user id."""
    out = {}
    rows = conn.execute("SELECT code, name FROM community ORDER BY code").fetchall()
    for n, row in enumerate(rows, start=1):
        taken = conn.execute("SELECT u.id FROM app_user u JOIN user_area a ON a.user_id = u.id"
                             " WHERE u.role = 'inspector' AND a.area_code = %s LIMIT 1", (row["code"],)).fetchone()
        if taken:
            out[row["code"]] = taken["id"]
            continue
        user = create_user(conn, username=f"inspector{n:02d}", password=password, role="inspector",
                           display_name=f"{_person(rng)}（{row['name']}监督员）", areas=[row["code"]], actor="demo")
        out[row["code"]] = user.id
    return out


def _points_in_grids(conn: psycopg.Connection, rng: np.random.Generator, n: int) -> list[tuple[float, float]]:
    rows = conn.execute("SELECT ST_AsBinary(geom) AS wkb FROM grid ORDER BY code").fetchall()
    grids = shapely.from_wkb([bytes(r["wkb"]) for r in rows])
    points = []
    while len(points) < n:
        grid = grids[rng.integers(len(grids))]
        x0, y0, x1, y1 = grid.bounds
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if grid.contains(shapely.Point(x, y)):
            points.append((round(x, 7), round(y, 7)))
    return points


def seed_cases(conn: psycopg.Connection, desk: CaseDesk, *, seed: int, now: dt.datetime, password: str,
               data_dir: Path) -> int:
    """Report and walk the demo cases; returns how many were made."""
    rng = np.random.default_rng(seed + 311)
    community_inspectors(conn, password, rng)
    staff = {role: load_user(conn, conn.execute("SELECT id FROM app_user WHERE username = %s",
                                                (name,)).fetchone()["id"])
             for role, name in (("operator", "operator"), ("shift_lead", "shiftlead"), ("dispatcher", "dispatcher"))}
    total = sum(n for _, n in PLAN)
    points = _points_in_grids(conn, rng, total)
    made = 0
    for target, count in PLAN:
        for _ in range(count):
            lon, lat = points[made]
            # Finished cases started days ago; open ones mostly recently, a few long enough to be overdue.
            hours_ago = rng.uniform(30, 200) if target in ("closed", "not_filed", "void") else rng.uniform(1, 60)
            t = now - dt.timedelta(hours=float(hours_ago))
            _walk(conn, desk, rng, staff, data_dir, target, lon, lat, t, now)
            made += 1
    return made


def _walk(conn, desk, rng, staff, data_dir, target, lon, lat, t, now) -> None:
    """Report one case at time t and take it to `target`, each step a little later."""
    def step(minutes: float) -> dt.datetime:
        nonlocal t
        t = min(t + dt.timedelta(minutes=float(minutes)), now - dt.timedelta(minutes=1))
        return t

    public = target in ("verifying", "not_filed") or rng.random() < 0.3
    reporter = _person(rng)
    made = report(conn, desk, NewReport(
        source="hotline" if public else "inspector", kind="event",
        class_code=EVENT_CLASSES[rng.integers(len(EVENT_CLASSES))], lon=lon, lat=lat,
        description="市民来电反映" if public else "巡查发现",
        reporter_name=reporter if public else None,
        reporter_phone=f"139{rng.integers(10**7, 10**8)}" if public else None),
        actor=None if public else _inspector_at(conn, lon, lat), now=t)
    case = made.case
    cid = case["id"]

    def do(action, actor, minutes, **req):
        return act(conn, desk, cid, action, actor, ActionRequest(**req), now=step(minutes))

    if public:
        if target == "verifying":
            return
        inspector = load_user(conn, case["assignee_id"]) if case["assignee_id"] else None
        if inspector is None:
            return
        if target == "not_filed":
            do("dismiss", inspector, rng.uniform(10, 40), note="现场核实，问题不存在")
            return
        do("confirm", inspector, rng.uniform(10, 40))
    if target == "reported":
        return
    if target == "void":
        do("void", staff["shift_lead"], rng.uniform(5, 30), note="重复上报，作废")
        return
    if target == "not_filed":
        do("reject", staff["operator"], rng.uniform(5, 30), note="不属于城市管理范围")
        return
    filed = do("file", staff["operator"], rng.uniform(3, 20))
    if target == "filed":
        return
    dept = filed["suggested_dept_id"] or conn.execute("SELECT id FROM department ORDER BY id LIMIT 1").fetchone()["id"]
    do("dispatch", staff["dispatcher"], rng.uniform(3, 20), dept_id=dept)
    if target == "dispatched":
        return
    name = conn.execute("SELECT name FROM department WHERE id = %s", (dept,)).fetchone()["name"]
    department = StandIn(dept_id=dept, username=f"演示:{name}")
    do("accept", department, rng.uniform(10, 60))
    if target == "in_progress":
        return
    # Most are handled within their limit; about one in five late.
    late = rng.random() < 0.2
    act(conn, desk, cid, "handle", department, ActionRequest(note="已处置"),
        photos=[_photo(data_dir, rng, "after")], now=step(rng.uniform(60, 500) * (3 if late else 1)))
    if target == "handled":
        return
    checking = do("send_check", staff["operator"], rng.uniform(5, 30))
    if target == "checking" or checking["assignee_id"] is None:
        return
    act(conn, desk, cid, "check_pass", load_user(conn, checking["assignee_id"]), ActionRequest(),
        photos=[_photo(data_dir, rng, "after")], now=step(rng.uniform(15, 90)))
    if target == "checked":
        return
    do("close", staff["shift_lead"], rng.uniform(5, 30))


def _photo(data_dir: Path, rng: np.random.Generator, kind: str) -> StoredPhoto:
    """A small generated picture standing in for a field photo."""
    img = Image.new("RGB", (480, 360), tuple(int(c) for c in rng.integers(60, 200, 3)))
    ImageDraw.Draw(img).rectangle([(120, 90), (360, 270)], outline=(255, 255, 255), width=6)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return store_photo(data_dir, buf.getvalue(), kind, "demo.jpg")


def _inspector_at(conn, lon, lat):
    row = conn.execute(
        "SELECT u.id FROM app_user u JOIN user_area a ON a.user_id = u.id JOIN grid g ON g.code LIKE a.area_code || '%%'"
        " WHERE u.role = 'inspector' AND ST_Intersects(g.geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))"
        " ORDER BY length(a.area_code) DESC LIMIT 1", (lon, lat)).fetchone()
    return load_user(conn, row["id"])
