"""Rendering GeoReport v2 answers as JSON or XML, and the GeoReport error format.

The route code builds plain data (dicts, lists, strings, numbers, booleans, None); this
module turns it into bytes. XML is built with ElementTree so every value is escaped and
the document is always well-formed; lists become a container element holding one child
per item, named as the spec names them (services/service, service_requests/request …)."""
from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from typing import Any

from fastapi.responses import Response

FORMATS = ("json", "xml")
# XML is the format every GeoReport v2 server must offer, so it answers when the asked one is unknown.
FALLBACK_FORMAT = "xml"
MEDIA_TYPES = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}

# What each item of a list is called in XML, by the list's own element name.
XML_ITEM_NAMES = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "endpoints": "endpoint",
    "formats": "format",
    "attributes": "attribute",
    "values": "value",
}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):          # before int: True is an int in Python
        return "true" if value else "false"
    return str(value)


def _fill(element: ET.Element, value: Any) -> None:
    """Write `value` into `element`: dicts as child elements, lists as repeated items."""
    if isinstance(value, dict):
        for key, child_value in value.items():
            _fill(ET.SubElement(element, key), child_value)
    elif isinstance(value, list):
        item_name = XML_ITEM_NAMES.get(element.tag, "item")
        for item in value:
            _fill(ET.SubElement(element, item_name), item)
    else:
        element.text = _text(value)


def to_xml(data: Any, root: str) -> bytes:
    """A UTF-8 XML document with `root` as its root element, declaration included."""
    element = ET.Element(root)
    _fill(element, data)
    buffer = io.BytesIO()
    ET.ElementTree(element).write(buffer, encoding="UTF-8", xml_declaration=True)
    return buffer.getvalue()


def to_json(data: Any) -> bytes:
    # ensure_ascii off: Chinese names travel as UTF-8 text, readable by people and clients alike.
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def render(fmt: str, data: Any, root: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Answer with `data` in the asked format; `root` names the XML root element (a JSON
    answer has no root: a list stays a list, an object stays an object)."""
    fmt = fmt if fmt in FORMATS else FALLBACK_FORMAT
    body = to_json(data) if fmt == "json" else to_xml(data, root)
    return Response(body, status_code=status, media_type=MEDIA_TYPES[fmt], headers=headers)


def render_errors(fmt: str, status: int, descriptions: list[str]) -> Response:
    """The GeoReport error format: a list of {code, description}, code being the HTTP status."""
    errors = [{"code": status, "description": text} for text in descriptions]
    return render(fmt, errors, root="errors", status=status)
