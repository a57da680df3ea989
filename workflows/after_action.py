"""The after-action report (评估报告) of a closed incident or drill: what happened and how
fast — the times to verify, activate, dispatch, contain and close, the plans run, every task
on time, late, waived or left undone, the resources sent and how quickly they answered, the
public warnings, the full timeline — and a map drawn from PostGIS as inline SVG.

A drill is scored (演练评分) out of 100 by the parts in SCORE_PARTS. A real incident gets the
same parts as an assessment (处置评估) but no score: a real emergency is reviewed, not graded,
and its figures do not belong beside drill scores. Read-only: it writes nothing."""
from __future__ import annotations

import datetime as dt
import html
import math
from typing import Any

import psycopg

from gis.errors import Conflict
from workflows import dispatch, incidents, response

# The drill score (演练评分): (key, weight, zh-CN name). Weights add up to 100. Finishing the
# plan's tasks on time is what a plan is for, so it weighs most; the mandatory steps actually
# done (not waived) next, because a drill that waives them has not practised them; then the
# speed of the two things a command centre itself controls — starting the plan and getting
# resources to answer — and last whether the public was warned.
SCORE_PARTS: tuple[tuple[str, int, str], ...] = (
    ("tasks_on_time", 40, "任务按时完成率"),
    ("mandatory_done", 20, "必办步骤实际完成（未豁免）"),
    ("activation_time", 15, "预案启动用时（目标 10 分钟内）"),
    ("dispatch_ack", 15, "调度指令在确认时限内确认"),
    ("public_warning", 10, "发布公众预警"),
)
ACTIVATION_TARGET_S = 10 * 60   # full points within this; none at twice as long (linear between)

MILESTONES = (("verified", "核实"), ("activated", "启动预案"), ("first_dispatch", "首次调度"),
              ("contained", "控制"), ("closed", "关闭"))


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> int | None:
    return None if start is None or end is None else round((end - start).total_seconds())


# ---------------------------------------------------------------- the parts of the report

def _level_history(events: list[dict], initial: str, reported_at: dt.datetime, reported_by: str) -> list[dict]:
    """The level at report (its reason None), then every change (升级/降级) with its reason,
    from the timeline."""
    first = next((e for e in events if e["kind"] == "reported"), None)
    start = (first["detail"].get("level") if first else None) or initial
    out = [{"at": reported_at, "level": start, "from": None, "reason": None, "actor": reported_by}]
    for e in events:
        if e["kind"] == "level":
            out.append({"at": e["at"], "level": e["detail"].get("to"), "from": e["detail"].get("from"),
                        "reason": e["detail"].get("reason", ""), "actor": e["actor"]})
    if out[-1]["level"] != initial:        # a change the timeline lost: say where it ended
        out.append({"at": None, "level": initial, "from": out[-1]["level"], "reason": "", "actor": ""})
    return out


def _task_rows(conn: psycopg.Connection, incident_id: int) -> tuple[list[dict], dict]:
    rows, counts = [], {"total": 0, "on_time": 0, "late": 0, "waived": 0, "not_done": 0, "cancelled": 0,
                        "mandatory": 0, "mandatory_done": 0, "mandatory_waived": 0, "escalated": 0}
    for t in response.tasks(conn, incident_id):
        late_by = None
        if t["status"] == "done":
            late_by = max(0, _seconds(t["due_at"], t["finished_at"]))
            outcome = "late" if late_by > 0 else "on_time"
        elif t["status"] in ("waived", "cancelled"):
            outcome = t["status"]
        else:
            outcome = "not_done"
        counts["total"] += 1
        counts[outcome] += 1
        counts["escalated"] += t["escalated_at"] is not None
        if t["mandatory"]:
            counts["mandatory"] += 1
            counts["mandatory_done"] += t["status"] == "done"
            counts["mandatory_waived"] += t["status"] == "waived"
        rows.append({"id": t["id"], "step_id": t["step_id"], "plan_id": t["plan_id"], "level": t["level"],
                     "title": t["title"], "role": t["role"], "post": t["post"], "owner": t["owner"],
                     "mandatory": t["mandatory"], "status": t["status"], "status_name": t["status_name"],
                     "outcome": outcome, "due_at": t["due_at"], "started_at": t["started_at"],
                     "finished_at": t["finished_at"], "late_by_s": late_by,    # 0 on time, None not done
                     "escalated": t["escalated_at"] is not None, "waived_reason": t["waived_reason"],
                     "waived_by": t["waived_by"], "note": t["note"]})
    return rows, counts


def _order_rows(conn: psycopg.Connection, incident_id: int) -> tuple[list[dict], list[dict]]:
    rows, totals = [], {}
    for o in dispatch.orders(conn, incident_id):
        # Arriving counts as the answer when the unit never pressed acknowledge.
        answered = o["acked_at"] or o["arrived_at"]
        rows.append({"id": o["id"], "resource_id": o["resource_id"], "name": o["name"], "type_code": o["type_code"],
                     "type_name": o["type_name"], "unit": o["unit"], "quantity": o["quantity"], "status": o["status"],
                     "status_name": o["status_name"], "ordered_by": o["ordered_by"], "sent_at": o["ordered_at"],
                     "ack_due_at": o["ack_due_at"], "acknowledged_at": o["acked_at"],
                     "ack_s": _seconds(o["ordered_at"], answered),
                     "ack_in_time": answered is not None and answered <= o["ack_due_at"],
                     "arrived_at": o["arrived_at"], "released_at": o["released_at"],
                     "escalated": o["escalated_at"] is not None, "lon": o["lon"], "lat": o["lat"]})
        if o["status"] != "refused":
            t = totals.setdefault(o["type_code"], {"type_code": o["type_code"], "type_name": o["type_name"],
                                                   "unit": o["unit"], "orders": 0, "quantity": 0})
            t["orders"] += 1
            t["quantity"] += o["quantity"]
    return rows, sorted(totals.values(), key=lambda t: t["type_code"])


def _alerts(conn: psycopg.Connection, incident_id: int) -> list[dict]:
    return conn.execute("SELECT id, identifier, msg_type, status, state, level, headline, drafted_by, drafted_at,"
                        " decided_by, decided_at, sent_at FROM alert WHERE incident_id = %s ORDER BY id",
                        (incident_id,)).fetchall()


def _part(key: str, value: float | None, measured: str, points_share: float) -> dict:
    weight, name = next((w, n) for k, w, n in SCORE_PARTS if k == key)
    return {"key": key, "name": name, "weight": weight, "value": value, "measured": measured,
            "points": round(weight * max(0.0, min(1.0, points_share)), 1)}


def _assessment(counts: dict, durations: dict, orders: list[dict], alerts: list[dict]) -> dict:
    """The score's parts, measured; `total` is their sum."""
    due = counts["total"] - counts["cancelled"]          # optional tasks cancelled at close are not held against it
    on_time = counts["on_time"] / due if due else None
    mandatory = counts["mandatory_done"] / counts["mandatory"] if counts["mandatory"] else None
    act = durations["activated"]
    act_share = 0.0 if act is None else 1.0 if act <= ACTIVATION_TARGET_S else \
        max(0.0, 2 - act / ACTIVATION_TARGET_S)
    answered = [o for o in orders if o["status"] != "refused"]    # a refusal is judged by the order it led to
    acked = sum(o["ack_in_time"] for o in answered)
    warned = [a for a in alerts if a["sent_at"] is not None]
    parts = [
        _part("tasks_on_time", on_time, f"{counts['on_time']}/{due}", on_time or 0),
        _part("mandatory_done", mandatory, f"{counts['mandatory_done']}/{counts['mandatory']}", mandatory or 0),
        _part("activation_time", act, "未启动" if act is None else f"{act / 60:.1f} 分钟", act_share),
        _part("dispatch_ack", acked / len(answered) if answered else None,
              f"{acked}/{len(answered)}" if answered else "无调度", acked / len(answered) if answered else 0),
        _part("public_warning", len(warned), f"{len(warned)} 条", 1.0 if warned else 0.0),
    ]
    return {"parts": parts, "total": round(sum(p["points"] for p in parts), 1), "max": 100}


# ---------------------------------------------------------------- the report

def report(conn: psycopg.Connection, incident_id: int, actor: Any) -> dict:
    """The after-action report of a closed incident (404 when the actor may not see it, 409
    while it is still open)."""
    inc = incidents.get(conn, incident_id, actor)
    if inc["status"] != "closed":
        raise Conflict(f"incident {inc['incident_no']} is {inc['status_name']}; the after-action report (评估报告)"
                       " is made once it is closed")
    place = conn.execute("SELECT g.name AS grid_name, c.name AS community, s.name AS street FROM grid g"
                         " JOIN community c ON c.code = g.community_code JOIN street s ON s.code = c.street_code"
                         " WHERE g.code = %s", (inc["grid_code"],)).fetchone() or {}
    events = incidents.events(conn, incident_id)
    plans = response.activations(conn, incident_id)
    tasks, counts = _task_rows(conn, incident_id)
    orders, by_type = _order_rows(conn, incident_id)
    alerts = _alerts(conn, incident_id)
    at = {"verified": inc["verified_at"], "activated": min((p["activated_at"] for p in plans), default=None),
          "first_dispatch": min((o["sent_at"] for o in orders), default=None),
          "contained": inc["contained_at"], "closed": inc["closed_at"]}
    durations = {k: _seconds(inc["reported_at"], v) for k, v in at.items()}
    assessment = _assessment(counts, durations, orders, alerts)
    keep = ("id", "incident_no", "title", "category", "subtype", "level", "level_name", "status", "drill",
            "lon", "lat", "radius_m", "area", "grid_code", "description", "reported_by", "reported_at",
            "verified_at", "responding_at", "contained_at", "closed_at")
    return {
        "incident": {**{k: inc[k] for k in keep}, **place},
        "level_history": _level_history(events, inc["level"], inc["reported_at"], inc["reported_by"]),
        "milestones": {"reported": inc["reported_at"], **at},
        "durations": durations,
        "plans": [{"id": p["id"], "plan_id": p["plan_id"], "plan_name": p["plan_name"], "version": p["plan_version"],
                   "level": p["level"], "automatic": p["automatic"], "activated_by": p["activated_by"],
                   "activated_at": p["activated_at"]} for p in plans],
        "tasks": {"counts": counts, "items": tasks},
        "resources": {"orders": orders, "by_type": by_type,
                      "ack_in_time": sum(o["ack_in_time"] for o in orders), "escalated": sum(o["escalated"] for o in orders)},
        "alerts": alerts,
        "timeline": [{"at": e["at"], "actor": e["actor"], "kind": e["kind"], "message": e["message"]} for e in events],
        "assessment": assessment,
        "score": assessment if inc["drill"] else None,
        "generated_at": dt.datetime.now(dt.timezone.utc),
    }


# ---------------------------------------------------------------- the map

VIEW_W, VIEW_H, PAD = 800, 560, 36
MAX_GRID_LABELS = 40            # more grids than this: outlines only, labels would pile up

_HEAD_SQL = """
WITH i AS (SELECT incident_no, location, coalesce(area, location) AS touch FROM incident WHERE id = %(id)s),
everything AS (
  SELECT ST_Transform(g.geom, 3857) AS g FROM grid g, i WHERE g.geom && i.touch AND ST_Intersects(g.geom, i.touch)
  UNION ALL SELECT ST_Transform(r.location, 3857) FROM dispatch_order d JOIN resource r ON r.id = d.resource_id
             WHERE d.incident_id = %(id)s
  UNION ALL SELECT ST_Transform(touch, 3857) FROM i),
box AS (SELECT ST_Extent(g) AS b FROM everything)
SELECT i.incident_no, ST_X(ST_Transform(i.location, 3857)) AS px, ST_Y(ST_Transform(i.location, 3857)) AS py,
       ST_Y(i.location) AS lat, ST_XMin(b) AS x0, ST_YMin(b) AS y0, ST_XMax(b) AS x1, ST_YMax(b) AS y1
  FROM i, box"""


def _shape_rows(conn: psycopg.Connection, incident_id: int, t: dict) -> tuple[list[dict], dict | None, list[dict]]:
    """Grids and area as SVG path data already in viewBox units; resources as points. ST_AsSVG
    writes -y, so the affine leaves y unflipped and it comes out right."""
    params = {"id": incident_id, **t}
    affine = "ST_AsSVG(ST_Affine(%s, %%(s)s, 0, 0, %%(s)s, %%(ox)s, %%(oy)s), 0, 1)"
    grids = conn.execute(
        "WITH i AS (SELECT coalesce(area, location) AS touch FROM incident WHERE id = %(id)s)"
        f" SELECT g.code, {affine % 'ST_Transform(g.geom, 3857)'} AS d,"
        f" {affine % 'ST_Transform(ST_PointOnSurface(g.geom), 3857)'} AS label,"
        " (ST_XMax(ST_Transform(g.geom, 3857)) - ST_XMin(ST_Transform(g.geom, 3857))) * %(s)s AS width_px"
        " FROM grid g, i WHERE g.geom && i.touch AND ST_Intersects(g.geom, i.touch) ORDER BY g.code",
        params).fetchall()
    area = conn.execute(f"SELECT {affine % 'ST_Transform(area, 3857)'} AS d FROM incident"
                        " WHERE id = %(id)s AND area IS NOT NULL", params).fetchone()
    res = conn.execute(
        "SELECT DISTINCT r.id, r.name, r.type_code, ST_X(ST_Transform(r.location, 3857)) AS x,"
        " ST_Y(ST_Transform(r.location, 3857)) AS y FROM dispatch_order d JOIN resource r ON r.id = d.resource_id"
        " WHERE d.incident_id = %(id)s ORDER BY r.id", params).fetchall()
    return grids, area, res


def _point_attrs(svg_point: str) -> tuple[float, float]:
    """'cx="12.3" cy="45.6"' (ST_AsSVG of a point) → (12.3, 45.6)."""
    parts = dict(p.split("=") for p in svg_point.split())
    return float(parts["cx"].strip('"')), float(parts["cy"].strip('"'))


def _scale_bar(s: float, lat: float) -> str:
    """A round length of ground (EPSG:3857 stretches by 1/cos(lat)) about a fifth of the width."""
    metres_per_px = math.cos(math.radians(lat)) / s
    want = VIEW_W / 5 * metres_per_px
    step = max(n * 10 ** e for e in range(0, 6) for n in (1, 2, 5) if n * 10 ** e <= max(want, 1))
    px = step / metres_per_px
    x0, y0 = PAD, VIEW_H - PAD / 2
    label = f"{step / 1000:g} km" if step >= 1000 else f"{step:g} m"      # read alike in zh-CN and English
    return (f'<g class="scale"><path d="M{x0} {y0 - 5} V{y0} H{x0 + px:.1f} V{y0 - 5}" fill="none" stroke="#333"/>'
            f'<text x="{x0 + px + 6:.1f}" y="{y0}" font-size="11">{html.escape(label)}</text></g>')


def map_svg(conn: psycopg.Connection, incident_id: int) -> str:
    """The incident on one inline SVG (no external assets): the grids its affected area
    touches (labelled by code when there is room), the area, the incident point and the
    dispatched resources with their names. Web Mercator (EPSG:3857), scaled to a fixed
    viewBox with north up. Every piece of text is escaped here."""
    box = head = conn.execute(_HEAD_SQL, {"id": incident_id}).fetchone()
    if head is None:
        return ""
    # At least 200 m across, so a lone point is not blown up to fill the picture.
    cx, cy = (box["x0"] + box["x1"]) / 2, (box["y0"] + box["y1"]) / 2
    half_w, half_h = max((box["x1"] - box["x0"]) / 2, 100), max((box["y1"] - box["y0"]) / 2, 100)
    s = min((VIEW_W - 2 * PAD) / (2 * half_w), (VIEW_H - 2 * PAD) / (2 * half_h))
    # x' = x·s + ox; y' = y·s + oy, which ST_AsSVG negates into screen y (north up).
    t = {"s": s, "ox": VIEW_W / 2 - cx * s, "oy": -(VIEW_H / 2) - cy * s}
    grids, area, resources = _shape_rows(conn, incident_id, t)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {VIEW_W} {VIEW_H}" class="incident-map"'
           f' role="img" font-family="sans-serif">',
           f"<title>{html.escape(head['incident_no'])}</title>",
           f'<rect width="{VIEW_W}" height="{VIEW_H}" fill="#fbfbf8"/>']
    label_room = len(grids) <= MAX_GRID_LABELS
    px, py = head["px"] * s + t["ox"], -(head["py"] * s + t["oy"])
    for g in grids:
        out.append(f'<path class="grid" data-code="{html.escape(g["code"])}" d="{html.escape(g["d"])}"'
                   ' fill="#eef3f8" stroke="#7a8ca3" stroke-width="1"/>')
    if area is not None:
        out.append(f'<path class="affected" d="{html.escape(area["d"])}" fill="#e8453c" fill-opacity="0.18"'
                   ' stroke="#e8453c" stroke-width="2" stroke-dasharray="6 4"/>')
    for g in grids:
        if not label_room:
            break
        x, y = _point_attrs(g["label"])
        if abs(x - px) < 40 and abs(y - py) < 14:
            y += 22                         # not under the incident's own marker
        # The full code where it fits, else community + grid (the sequence alone repeats
        # from one community to the next), else the grid's own three digits.
        w = g["width_px"]
        text = g["code"] if w >= 7 * 15 else g["code"][-6:] if w >= 7 * 6 else g["code"][-3:] if w >= 26 else None
        if text:
            out.append(f'<text class="grid-label" x="{x:.1f}" y="{y:.1f}" font-size="11" fill="#4a5a70"'
                       f' text-anchor="middle">{html.escape(text)}</text>')
    for r in resources:
        x, y = r["x"] * s + t["ox"], -(r["y"] * s + t["oy"])
        out.append(f'<g class="resource" data-id="{r["id"]}"><rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10"'
                   f' height="10" fill="#1f6fd1" stroke="#fff"/><text x="{x + 8:.1f}" y="{y + 4:.1f}" font-size="12"'
                   f' fill="#123f7a">{html.escape(r["name"])}</text></g>')
    out.append(f'<circle class="incident-point" cx="{px:.1f}" cy="{py:.1f}" r="7" fill="#d7191c" stroke="#fff"'
               ' stroke-width="2"/>')
    out.append(f'<text x="{px + 10:.1f}" y="{py - 10:.1f}" font-size="13" font-weight="bold" fill="#a50f15">'
               f'{html.escape(head["incident_no"])}</text>')
    out.append(_scale_bar(s, head["lat"]))
    out.append(f'<text x="{VIEW_W - PAD}" y="{PAD}" font-size="14" text-anchor="middle">N ↑</text>')
    out.append("</svg>")
    return "".join(out)
