"""Public warnings (公众预警): CAP 1.2 messages written from the warning template of the plan
running on an incident, issued only when a commander or leader approves them (签发).

A message is drafted (拟稿), then issued or rejected. An Update (更新) or a Cancel (解除)
names the issued alert it replaces; issuing it makes that one "superseded" or "cancelled".
The XML is built once, at issue, and served exactly as stored; drafts and rejected messages
are never served. The warning's content is kept in `alert.body` as JSON (the fields of
workflows.cap.Warning, its area included), so the approval rebuilds exactly what was drafted;
only the expiry is counted from the moment of issue."""
from __future__ import annotations

import dataclasses
import datetime as dt
import string
import xml.etree.ElementTree as ET
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from gis.db import audit
from gis.errors import Conflict, Invalid, NotFound
from workflows import cap, incidents, response
from workflows.actors import utc_now, who
from workflows.cases import LOCAL_TZ
from workflows.incidents import require_commander, timeline
from workflows.notify import live, notify
from workflows.plans import WARNING_MAX_EXPIRES_MIN, Plan
from workflows.text_checks import check_text, check_texts

# The command centre's CAP <sender>: one stable address, named here and nowhere else.
SENDER = "yjzh@citygrid.local"
_DOMAIN = SENDER.split("@")[1]
_TAG = f"tag:{_DOMAIN},2026:"            # RFC 4151 tag URIs for the Atom feed
ATOM = "http://www.w3.org/2005/Atom"
MSG_TYPES = cap.MSG_TYPES
SERVED = ("issued", "superseded", "cancelled")       # states whose XML is public
STATE_NAMES = {"draft": "待签发", "issued": "已发布", "rejected": "已退回", "superseded": "已被更新",
               "cancelled": "已解除"}
MSG_NAMES = {"Alert": "预警", "Update": "预警更新", "Cancel": "预警解除"}
# Filled by the system from the incident, never by hand.
_SYSTEM_VALUES = ("level_name", "area")
_TEMPLATE_TEXTS = ("headline", "description", "instruction")
_WARNING_FIELDS = tuple(f.name for f in dataclasses.fields(cap.Warning) if f.name not in ("area", "expires"))
_DRILL_NOTE = "【演练】本信息为应急演练，非真实预警（EXERCISE）"


def _local(t: dt.datetime) -> str:
    return t.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")


# ---------------------------------------------------------------- checking the request

def _check_request(msg_type: str, references_id: int | None, values: dict | None, area_description: str | None,
                   expires_in_min: int | None, note: str | None) -> None:
    if msg_type not in MSG_TYPES:
        raise Invalid(f"msg_type {msg_type!r} is not one of {', '.join(MSG_TYPES)}"
                      " (Alert a new warning, Update to change an issued one, Cancel to lift it)")
    if msg_type == "Alert" and references_id is not None:
        raise Invalid("a new Alert references nothing; to change or lift an issued alert draft an Update or a Cancel")
    if msg_type != "Alert" and references_id is None:
        raise Invalid(f"an {msg_type} names the issued alert it replaces: give references_id")
    if msg_type == "Cancel" and not (note or "").strip():
        raise Invalid("a Cancel needs a note saying why the warning is lifted, e.g. 积水已退，交通恢复")
    if note is not None and len(note) > 1000:
        raise Invalid("the note is at most 1000 characters")
    check_text("the note", note)
    check_text("area_description", area_description)
    check_texts("values", values)
    if area_description is not None and not 1 <= len(area_description.strip()) <= 200:
        raise Invalid("area_description is 1 to 200 characters, e.g. 联星街道建设路一带")
    if expires_in_min is not None and (isinstance(expires_in_min, bool) or not isinstance(expires_in_min, int)
                                       or not 1 <= expires_in_min <= WARNING_MAX_EXPIRES_MIN):
        raise Invalid(f"expires_in_min is whole minutes from issue, 1 to {WARNING_MAX_EXPIRES_MIN} (7 days)")
    for key, value in (values or {}).items():
        if not isinstance(key, str) or not 1 <= len(key) <= 50:
            raise Invalid(f"values: {key!r} is not a field name (1 to 50 characters)")
        if key in _SYSTEM_VALUES:
            raise Invalid(f"values: {key} is filled in from the incident; set the area's text with area_description")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or len(str(value)) > 500:
            raise Invalid(f"values: {key} is a text or a number of at most 500 characters")


def _template_values(details: dict, values: dict | None) -> dict[str, str]:
    """The incident's details with the values given now on top, as text (nested details are
    not template values and are left out)."""
    merged = {k: str(v) for k, v in (details or {}).items()
              if isinstance(v, (str, int, float)) and not isinstance(v, bool) and k not in _SYSTEM_VALUES}
    merged.update({k: str(v) for k, v in (values or {}).items()})
    return {k: v.strip() for k, v in merged.items() if v.strip()}


def _require_filled(plan: Plan, filled: dict[str, str]) -> None:
    """Refuse a warning that would reach the public with a placeholder still in it."""
    needed = set()
    try:
        for key in _TEMPLATE_TEXTS:
            needed |= {f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(plan.warning[key]) if f}
    except ValueError as e:
        raise Invalid(f"the warning template of plan {plan.name} is malformed ({e}); fix the plan") from None
    missing = sorted(needed - set(_SYSTEM_VALUES) - set(filled))
    if missing:
        raise Invalid(f"the warning template needs: {', '.join(missing)} — give them in values"
                      f" (e.g. {{\"{missing[0]}\": …}}) or in the incident's details")


# ---------------------------------------------------------------- what the warning is about

def plan_for(conn: psycopg.Connection, inc: dict) -> Plan:
    """The plan whose template writes the incident's warnings: the latest one activated, or
    else the one plan covering its category and subtype."""
    row = conn.execute("SELECT plan_id, plan_version, document FROM plan_activation WHERE incident_id = %s"
                       " ORDER BY id DESC LIMIT 1", (inc["id"],)).fetchone()
    if row:
        return response.plan_as_run(row["plan_id"], row["plan_version"], row["document"])
    plans = response.matching_plans(inc["category"], inc["subtype"])
    if not plans:
        raise Invalid(f"no plan covers {inc['category']}/{inc['subtype']}, so there is no warning template"
                      " to write the alert from")
    if len(plans) > 1:
        raise Invalid("several plans cover this incident; activate one first, its warning template is used: "
                      + ", ".join(f"{p.id} ({p.name})" for p in plans))
    return plans[0]


def _place(conn: psycopg.Connection, incident_id: int) -> dict:
    return conn.execute(
        "SELECT i.radius_m, i.area IS NOT NULL AS has_area, ST_X(i.location) AS lon, ST_Y(i.location) AS lat,"
        " i.details, g.name AS grid, s.name AS street, c.name AS county, road.name AS road"
        " FROM incident i LEFT JOIN grid g ON g.code = i.grid_code"
        " LEFT JOIN street s ON s.code = left(i.grid_code, 9) LEFT JOIN county c ON c.code = left(i.grid_code, 6)"
        " LEFT JOIN LATERAL (SELECT r.name, ST_Distance(r.geom::geography, i.location::geography) AS d"
        "   FROM basemap_road r WHERE coalesce(r.name, '') <> '' ORDER BY r.geom <-> i.location LIMIT 1) road"
        "   ON road.d <= 200"
        " WHERE i.id = %s", (incident_id,)).fetchone()


def _sender_name(place: dict) -> str:
    return f"{place['county'] or ''}应急指挥中心"


def _area(conn: psycopg.Connection, inc: dict, place: dict, description: str | None) -> cap.Area:
    """A drawn affected area as its polygons (exterior rings, lon/lat); an area given as a
    radius as a CAP circle (exact, where its buffer polygon would only approximate it)."""
    if description is None:
        spot = (place["details"] or {}).get("place")
        where = spot if isinstance(spot, str) and spot.strip() else (
            f"{place['road']}一带" if place["road"] else place["grid"] or "")
        description = f"{place['street'] or ''}{where}" or inc["title"]
    description = description.strip()
    if place["radius_m"] is not None:
        return cap.Area(description, circle=(place["lon"], place["lat"], round(place["radius_m"] / 1000, 3)))
    if place["has_area"]:
        rings = [tuple((x, y) for x, y in r["ring"]["coordinates"]) for r in conn.execute(
            "SELECT ST_AsGeoJSON(ST_ExteriorRing(d.geom), 7)::json AS ring FROM incident i, ST_Dump(i.area) d"
            " WHERE i.id = %s ORDER BY d.path", (inc["id"],))]
        return cap.Area(description, polygon=rings[0], more_polygons=tuple(rings[1:]))
    return cap.Area(description)


def _body(warning: cap.Warning | None, note: str | None, expires_in_min: int | None) -> dict:
    body: dict[str, Any] = {"note": note, "expires_in_min": expires_in_min}
    if warning is not None:
        body.update({k: getattr(warning, k) for k in _WARNING_FIELDS})
        body["area"] = dataclasses.asdict(warning.area)
        body["parameters"] = list(warning.parameters.items())       # pairs: jsonb would reorder an object
    return body


def _warning(body: dict, sent: dt.datetime) -> cap.Warning | None:
    """The Warning a draft's body holds, expiring `expires_in_min` after `sent`; None for a
    Cancel, which carries no <info>."""
    if "event" not in body:
        return None
    a = body["area"]
    area = cap.Area(a["description"], polygon=tuple(tuple(p) for p in a["polygon"]),
                    circle=tuple(a["circle"]) if a["circle"] else None,
                    more_polygons=tuple(tuple(tuple(p) for p in ring) for ring in a["more_polygons"]))
    fields = {**{k: body[k] for k in _WARNING_FIELDS}, "parameters": dict(body["parameters"])}
    return cap.Warning(**fields, area=area,
                       expires=sent + dt.timedelta(minutes=body["expires_in_min"]))


def _referenced(conn: psycopg.Connection, inc: dict, msg_type: str, references_id: int | None,
                *, lock: bool = False) -> dict | None:
    """The issued alert an Update or Cancel replaces, checked."""
    if references_id is None:
        return None
    ref = conn.execute("SELECT * FROM alert WHERE id = %s" + (" FOR UPDATE" if lock else ""),
                       (references_id,)).fetchone()
    if ref is None:
        raise Invalid(f"references_id {references_id}: there is no such alert")
    if ref["incident_id"] != inc["id"]:
        raise Invalid(f"alert {ref['identifier']} belongs to another incident; an {msg_type} replaces an alert"
                      f" of incident {inc['incident_no']}")
    if ref["msg_type"] == "Cancel":
        raise Invalid(f"alert {ref['identifier']} is itself a Cancel; refer to the alert it lifted")
    if ref["state"] != "issued":
        newer = conn.execute("SELECT identifier FROM alert WHERE references_id = %s AND state IN ('issued',"
                             " 'superseded', 'cancelled') ORDER BY id DESC LIMIT 1", (ref["id"],)).fetchone()
        hint = f"; the one now in force follows from {newer['identifier']}" if newer else ""
        raise Conflict(f"alert {ref['identifier']} is {STATE_NAMES[ref['state']]}, not in force, so an {msg_type}"
                       f" cannot replace it{hint}")
    return ref


def _tell_commanders(conn: psycopg.Connection, inc: dict, plan: Plan | None, message: str, at: dt.datetime) -> None:
    """The holder of the plan's commander role now; nobody holding it (or no plan): every
    commander, since only a commander or leader can approve."""
    holder = response.role_holders(conn, plan, ["commander"], at)["commander"]["user_id"] if plan else None
    if holder is not None:
        notify(conn, kind="alert.draft", message=message, user_id=holder, incident_id=inc["id"])
    else:
        notify(conn, kind="alert.draft", message=message, role="commander", incident_id=inc["id"])


# ---------------------------------------------------------------- drafting (拟稿)

def draft(conn: psycopg.Connection, incident_id: int, actor: Any, *, msg_type: str = "Alert",
          references_id: int | None = None, values: dict | None = None, area_description: str | None = None,
          expires_in_min: int | None = None, note: str | None = None, now: dt.datetime | None = None) -> dict:
    """Draft an Alert, Update or Cancel for the incident, to be approved by a commander.
    An Alert or Update is written from the plan's template at the incident's level now."""
    _check_request(msg_type, references_id, values, area_description, expires_in_min, note)
    note = (note or "").strip() or None
    now = now or utc_now()
    name, actor_id = who(actor)
    with conn.transaction():
        incidents.get(conn, incident_id, actor)                # out of sight: 404
        inc = incidents.locked(conn, incident_id)              # drafts take turns: the sequence number
        if msg_type != "Cancel" and inc["status"] == "closed":
            raise Conflict(f"incident {inc['incident_no']} is closed; only a Cancel of an alert still in force"
                           " may be drafted")
        ref = _referenced(conn, inc, msg_type, references_id)
        plan = None
        if msg_type == "Cancel":
            warning, headline = None, f"解除：{ref['headline']}"
            try:
                plan = plan_for(conn, inc)
            except Invalid:
                pass                                           # a Cancel needs no template
        else:
            plan = plan_for(conn, inc)
            filled = _template_values(inc["details"], values)
            check_texts("the warning's values (the incident's details with yours on top)", filled)
            _require_filled(plan, filled)
            place = _place(conn, incident_id)
            warning = cap.warning_from_plan(plan, level=inc["level"], category=inc["category"],
                                            area=_area(conn, inc, place, area_description),
                                            sender_name=_sender_name(place), values=filled)
            headline = warning.headline
        minutes = None if warning is None else expires_in_min or plan.warning["expires_min"]
        seq = conn.execute("SELECT count(*) + 1 AS n FROM alert WHERE incident_id = %s", (incident_id,)).fetchone()["n"]
        identifier = f"{_DOMAIN}-{inc['incident_no']}-{seq:02d}"
        alert_id = conn.execute(
            "INSERT INTO alert (identifier, incident_id, msg_type, status, references_id, level, headline, body,"
            " drafted_by, drafted_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (identifier, incident_id, msg_type, "Exercise" if inc["drill"] else "Actual", references_id, inc["level"],
             headline, Jsonb(_body(warning, note, minutes)), name, now,
             now + dt.timedelta(minutes=minutes) if minutes else None)).fetchone()["id"]
        drill = "【演练】" if inc["drill"] else ""
        replaces = f"（替代 {ref['identifier']}）" if ref else ""
        timeline(conn, incident_id, actor, "alert.drafted",
                 f"{drill}拟稿{MSG_NAMES[msg_type]} {identifier}{replaces}：{headline}，待指挥长签发",
                 {"alert": alert_id, "identifier": identifier, "msg_type": msg_type, "references_id": references_id},
                 at=now)
        audit(conn, actor=name, actor_id=actor_id, action="alert.draft", entity="alert", entity_id=str(alert_id),
              detail={"incident_id": incident_id, "identifier": identifier, "msg_type": msg_type,
                      "references_id": references_id})
        _tell_commanders(conn, inc, plan, f"{drill}{inc['incident_no']} {MSG_NAMES[msg_type]}待签发：{headline}", now)
        live(conn, "incident", incident_id)
    return get(conn, alert_id, actor)


# ---------------------------------------------------------------- deciding (签发 / 退回)

def _locked(conn: psycopg.Connection, alert_id: int, actor: Any) -> dict:
    """The alert's row, locked, with its incident; out of the actor's sight is 404; anything
    but a draft is 409 saying who decided it and when."""
    where, params = incidents.visibility(actor)
    a = conn.execute(
        f"SELECT a.*, i.incident_no, i.status AS incident_status, i.drill FROM alert a JOIN incident i"
        f" ON i.id = a.incident_id WHERE a.id = %(id)s AND {where} FOR UPDATE OF a", {"id": alert_id, **params}).fetchone()
    if a is None:
        raise NotFound(f"alert {alert_id} does not exist or is not yours to see")
    if a["state"] != "draft":
        done = "rejected" if a["state"] == "rejected" else "already issued"
        raise Conflict(f"alert {a['identifier']} was {done} by {a['decided_by']} at {_local(a['decided_at'])}"
                       f" ({STATE_NAMES[a['state']]}); reload it")
    return a


def _cap_note(a: dict) -> str | None:
    parts = [_DRILL_NOTE] if a["status"] == "Exercise" else []
    if a["body"].get("note"):
        parts.append(a["body"]["note"])
    return "；".join(parts) or None


def approve(conn: psycopg.Connection, alert_id: int, actor: Any, *, now: dt.datetime | None = None) -> dict:
    """Issue a draft (签发): its CAP XML is built and stored, and the alert an Update or
    Cancel replaces becomes superseded or cancelled. Two approvals at once: one wins, the
    other is a 409."""
    require_commander(actor)
    sent = (now or utc_now()).replace(microsecond=0)         # CAP <sent> has whole seconds
    name, actor_id = who(actor)
    with conn.transaction():
        a = _locked(conn, alert_id, actor)
        if a["msg_type"] != "Cancel" and a["incident_status"] == "closed":
            raise Conflict(f"incident {a['incident_no']} is closed; a warning for it can no longer be issued")
        ref = _referenced(conn, {"id": a["incident_id"], "incident_no": a["incident_no"]}, a["msg_type"],
                          a["references_id"], lock=True)
        warning = _warning(a["body"], sent)
        references = []
        if ref is not None:
            ref_sender = ET.fromstring(ref["xml"].encode()).findtext(f"{{{cap.NS}}}sender")
            references = [cap.Reference(ref_sender, ref["identifier"], ref["sent_at"])]
        xml = cap.alert_xml(identifier=a["identifier"], sender=SENDER, sent=sent, status=a["status"],
                            msg_type=a["msg_type"], warning=warning, references=references, note=_cap_note(a),
                            incident=a["incident_no"]).decode()
        conn.execute("UPDATE alert SET state = 'issued', decided_by = %s, decided_at = %s, sent_at = %s,"
                     " expires_at = %s, xml = %s WHERE id = %s",
                     (name, now or sent, sent, warning.expires if warning else None, xml, alert_id))
        if ref is not None:
            conn.execute("UPDATE alert SET state = %s WHERE id = %s",
                         ("cancelled" if a["msg_type"] == "Cancel" else "superseded", ref["id"]))
        drill = "【演练】" if a["drill"] else ""
        replaces = f"，{ref['identifier']} {'解除' if a['msg_type'] == 'Cancel' else '被更新'}" if ref else ""
        timeline(conn, a["incident_id"], actor, "alert.issued",
                 f"{drill}签发{MSG_NAMES[a['msg_type']]} {a['identifier']}：{a['headline']}{replaces}",
                 {"alert": alert_id, "identifier": a["identifier"], "msg_type": a["msg_type"],
                  "references_id": a["references_id"]}, at=sent)
        audit(conn, actor=name, actor_id=actor_id, action="alert.approve", entity="alert", entity_id=str(alert_id),
              detail={"incident_id": a["incident_id"], "identifier": a["identifier"], "msg_type": a["msg_type"],
                      "references_id": a["references_id"], "status": a["status"]})
        live(conn, "incident", a["incident_id"])
    return get(conn, alert_id, actor)


def reject(conn: psycopg.Connection, alert_id: int, actor: Any, *, reason: str,
           now: dt.datetime | None = None) -> dict:
    """Send a draft back (退回) with a reason the drafter is told."""
    require_commander(actor)
    reason = (reason or "").strip()
    if not 2 <= len(reason) <= 1000:
        raise Invalid("a rejection needs a reason the drafter can act on (2 to 1000 characters)")
    check_text("the reason", reason)
    now = now or utc_now()
    name, actor_id = who(actor)
    with conn.transaction():
        a = _locked(conn, alert_id, actor)
        conn.execute("UPDATE alert SET state = 'rejected', decided_by = %s, decided_at = %s,"
                     " body = body || jsonb_build_object('rejected_reason', %s::text) WHERE id = %s",
                     (name, now, reason, alert_id))
        drill = "【演练】" if a["drill"] else ""
        timeline(conn, a["incident_id"], actor, "alert.rejected",
                 f"{drill}退回{MSG_NAMES[a['msg_type']]} {a['identifier']}：{reason}",
                 {"alert": alert_id, "identifier": a["identifier"], "reason": reason}, at=now)
        audit(conn, actor=name, actor_id=actor_id, action="alert.reject", entity="alert", entity_id=str(alert_id),
              detail={"incident_id": a["incident_id"], "identifier": a["identifier"], "reason": reason})
        drafter = conn.execute("SELECT id FROM app_user WHERE username = %s", (a["drafted_by"],)).fetchone()
        if drafter:
            notify(conn, kind="alert.rejected", message=f"{drill}{a['incident_no']} 预警被退回：{reason}",
                   user_id=drafter["id"], incident_id=a["incident_id"])
        live(conn, "incident", a["incident_id"])
    return get(conn, alert_id, actor)


# ---------------------------------------------------------------- reading

_COLUMNS = ("a.id, a.identifier, a.incident_id, i.incident_no, a.msg_type, a.status, a.references_id, a.level,"
            " a.headline, a.state, a.drafted_by, a.drafted_at, a.decided_by, a.decided_at, a.sent_at, a.expires_at,"
            " a.body")


def _shaped(row: dict) -> dict:
    """An alert row for the API: the body's content as a preview, and where its CAP is served."""
    body = row.pop("body")
    area = body.get("area")
    row["state_name"] = STATE_NAMES[row["state"]]
    row["note"] = body.get("note")
    row["rejected_reason"] = body.get("rejected_reason")
    row["expires_in_min"] = body.get("expires_in_min")
    row["preview"] = {"headline": row["headline"], "description": body.get("description"),
                      "instruction": body.get("instruction"), "event": body.get("event"),
                      "severity": body.get("severity"), "sender_name": body.get("sender_name"),
                      "area": area and {"description": area["description"], "polygon": area["polygon"],
                                        "more_polygons": area["more_polygons"], "circle": area["circle"]}}
    if row["state"] in SERVED:
        row["cap_url"] = f"/api/alerts/{row['id']}.cap"
    return row


def get(conn: psycopg.Connection, alert_id: int, actor: Any) -> dict:
    where, params = incidents.visibility(actor)
    row = conn.execute(f"SELECT {_COLUMNS} FROM alert a JOIN incident i ON i.id = a.incident_id"
                       f" WHERE a.id = %(id)s AND {where}", {"id": alert_id, **params}).fetchone()
    if row is None:
        raise NotFound(f"alert {alert_id} does not exist or is not yours to see")
    return _shaped(row)


def alerts_of(conn: psycopg.Connection, incident_id: int) -> list[dict]:
    """The incident's messages, newest first (the caller has checked the incident is visible)."""
    return [_shaped(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM alert a JOIN incident i ON i.id = a.incident_id WHERE a.incident_id = %s"
        " ORDER BY a.id DESC", (incident_id,))]


def issued_xml(conn: psycopg.Connection, alert_id: int) -> str:
    """The CAP XML of an issued message (also once superseded or cancelled: it was public)."""
    row = conn.execute("SELECT xml FROM alert WHERE id = %s AND state = ANY(%s)", (alert_id, list(SERVED))).fetchone()
    if row is None:
        raise NotFound(f"no issued alert {alert_id}")
    return row["xml"]


def active(conn: psycopg.Connection, now: dt.datetime | None = None) -> list[dict]:
    """The warnings in force: issued Alerts and Updates not yet expired, newest first."""
    return conn.execute(
        "SELECT a.id, a.identifier, a.status, a.headline, a.sent_at, a.expires_at, a.body, i.incident_no"
        " FROM alert a JOIN incident i ON i.id = a.incident_id WHERE a.state = 'issued'"
        " AND a.msg_type IN ('Alert', 'Update') AND (a.expires_at IS NULL OR a.expires_at > %s)"
        " ORDER BY a.sent_at DESC, a.id DESC", (now or utc_now(),)).fetchall()


def atom(conn: psycopg.Connection, base_url: str, now: dt.datetime | None = None) -> bytes:
    """An Atom 1.0 feed (RFC 4287) of the warnings in force, each linking to its CAP message."""
    now = now or utc_now()
    base = base_url.rstrip("/")
    rows = active(conn, now)

    def add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        child = ET.SubElement(parent, tag, attrs)
        child.text = text
        return child

    # Plain names under one xmlns: ElementTree's default_namespace refuses plain attribute names.
    feed = ET.Element("feed", {"xmlns": ATOM, "xml:lang": "zh-CN"})
    add(feed, "id", f"{_TAG}alerts")
    add(feed, "title", "公众预警信息（CAP 1.2）")
    add(feed, "updated", cap.cap_time(rows[0]["sent_at"] if rows else now))
    add(feed, "link", rel="self", type="application/atom+xml", href=f"{base}/api/alerts.atom")
    author = add(feed, "author")
    add(author, "name", "应急指挥中心")
    add(author, "email", SENDER)
    for r in rows:
        entry = add(feed, "entry")
        add(entry, "id", f"{_TAG}cap:{r['identifier']}")
        add(entry, "title", ("【演练】" if r["status"] == "Exercise" else "") + r["headline"])
        add(entry, "updated", cap.cap_time(r["sent_at"]))
        add(entry, "summary", r["body"].get("description") or r["headline"])
        add(entry, "link", rel="alternate", type="application/cap+xml", href=f"{base}/api/alerts/{r['id']}.cap")
        add(add(entry, "author"), "name", r["body"].get("sender_name") or "应急指挥中心")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
