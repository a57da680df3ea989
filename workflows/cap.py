"""Public warnings as CAP 1.2 (Common Alerting Protocol, OASIS): an alert is written from a
plan's warning template for an incident — status Actual, or Exercise for a drill — and its
updates and cancellation reference the original, as CAP requires.

The level maps to CAP severity and the category to CAP category as the shared catalog
suggests (`emergency.cap_mapping`). Times are written the way the schema's pattern wants
them: seconds, and a numeric offset (no "Z", no fractions)."""
from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from workflows.cases import LOCAL_TZ
from workflows.plans import Plan, emergency_catalog

NS = "urn:oasis:names:tc:emergency:cap:1.2"
STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel")


@dataclass(frozen=True)
class Reference:
    """An earlier message this one updates or cancels."""
    sender: str
    identifier: str
    sent: dt.datetime


@dataclass(frozen=True)
class Area:
    description: str
    polygon: tuple[tuple[float, float], ...] = ()    # (lon, lat), closed or not
    circle: tuple[float, float, float] | None = None  # (lon, lat, radius km)
    more_polygons: tuple[tuple[tuple[float, float], ...], ...] = ()   # further parts of a multi-part area


@dataclass(frozen=True)
class Warning:
    """One alert's content (one <info>, in Chinese)."""
    category: str                       # CAP: Geo, Met, Safety, Security, Rescue, Fire, Health, Env, Transport, Infra, CBRNE, Other
    event: str
    urgency: str
    severity: str
    certainty: str
    headline: str
    description: str
    instruction: str
    sender_name: str
    area: Area
    expires: dt.datetime | None = None
    contact: str | None = None
    web: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)


def cap_time(t: dt.datetime) -> str:
    return t.astimezone(LOCAL_TZ).replace(microsecond=0).isoformat()


def _fill(template: str, values: dict[str, str]) -> str:
    """The template with the placeholders it has values for; others are left for a person to see."""
    class Keep(dict):
        def __missing__(self, key: str) -> str:
            return "{" + key + "}"
    return template.format_map(Keep(values))


def warning_from_plan(plan: Plan, *, level: str, category: str, area: Area, sender_name: str,
                      values: dict[str, str] | None = None, expires: dt.datetime | None = None,
                      contact: str | None = None) -> Warning:
    """The plan's warning template filled in for an incident of `category` at `level`."""
    emergency = emergency_catalog()
    mapping = emergency["cap_mapping"]
    filled = {"level_name": emergency["levels"][level]["name"], "area": area.description, **(values or {})}
    template = plan.warning
    return Warning(category=mapping["category"].get(category, "Other"), event=template["event"],
                   urgency=template["urgency"], severity=mapping["severity"][level], certainty=template["certainty"],
                   headline=_fill(template["headline"], filled), description=_fill(template["description"], filled),
                   instruction=_fill(template["instruction"], filled), sender_name=sender_name, area=area,
                   expires=expires, contact=contact,
                   parameters={"level": level, "level_name": filled["level_name"], "plan": f"{plan.id} v{plan.version}"})


def alert_xml(*, identifier: str, sender: str, sent: dt.datetime, status: str, msg_type: str, warning: Warning | None,
              references: list[Reference] = (), note: str | None = None, incident: str | None = None) -> bytes:
    """One CAP 1.2 <alert> as UTF-8 XML. A Cancel may carry no <info>; Update and Cancel
    reference what they replace."""
    if status not in STATUSES or msg_type not in MSG_TYPES:
        raise ValueError(f"status is one of {STATUSES} and msgType one of {MSG_TYPES}")
    if msg_type != "Alert" and not references:
        raise ValueError(f"a {msg_type} names the messages it replaces (references)")
    ET.register_namespace("", NS)
    alert = ET.Element(f"{{{NS}}}alert")

    def add(parent: ET.Element, tag: str, text: str | None) -> ET.Element | None:
        if text is None:
            return None
        child = ET.SubElement(parent, f"{{{NS}}}{tag}")
        child.text = text
        return child

    add(alert, "identifier", identifier)
    add(alert, "sender", sender)
    add(alert, "sent", cap_time(sent))
    add(alert, "status", status)
    add(alert, "msgType", msg_type)
    add(alert, "scope", "Public")
    add(alert, "note", note)
    if references:
        add(alert, "references", " ".join(f"{r.sender},{r.identifier},{cap_time(r.sent)}" for r in references))
    add(alert, "incidents", incident)
    if warning is not None:
        _info(alert, warning, add)
    return ET.tostring(alert, encoding="utf-8", xml_declaration=True)


def _info(alert: ET.Element, w: Warning, add) -> None:
    info = ET.SubElement(alert, f"{{{NS}}}info")
    add(info, "language", "zh-CN")
    add(info, "category", w.category)
    add(info, "event", w.event)
    add(info, "urgency", w.urgency)
    add(info, "severity", w.severity)
    add(info, "certainty", w.certainty)
    add(info, "expires", cap_time(w.expires) if w.expires else None)
    add(info, "senderName", w.sender_name)
    add(info, "headline", w.headline)
    add(info, "description", w.description)
    add(info, "instruction", w.instruction)
    add(info, "web", w.web)
    add(info, "contact", w.contact)
    for name, value in w.parameters.items():
        parameter = ET.SubElement(info, f"{{{NS}}}parameter")
        add(parameter, "valueName", name)
        add(parameter, "value", value)
    area = ET.SubElement(info, f"{{{NS}}}area")
    add(area, "areaDesc", w.area.description)
    for polygon in (w.area.polygon, *w.area.more_polygons):
        if polygon:
            ring = list(polygon)
            if ring[0] != ring[-1]:
                ring.append(ring[0])                  # CAP polygons are closed, lat,lon pairs
            add(area, "polygon", " ".join(f"{lat:.6f},{lon:.6f}" for lon, lat in ring))
    if w.area.circle:
        lon, lat, radius_km = w.area.circle
        add(area, "circle", f"{lat:.6f},{lon:.6f} {radius_km:g}")
