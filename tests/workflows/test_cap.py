"""CAP 1.2 public warnings from a plan's template, valid against the official schema
(../shared/standards/CAP-v1.2.xsd): an alert, a drill's Exercise, an update and a cancel
that reference the original."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from lxml import etree

from workflows.cap import NS, Area, Reference, alert_xml, warning_from_plan
from workflows.plans import shipped_plans

XSD = Path(__file__).resolve().parents[3] / "shared" / "standards" / "CAP-v1.2.xsd"
SENT = dt.datetime(2026, 7, 3, 14, 5, 9, 123456, tzinfo=dt.timezone.utc)
AREA = Area("攸县联星街道建设路一带", polygon=((113.340, 27.000), (113.344, 27.000), (113.344, 27.002), (113.340, 27.002)))


@pytest.fixture(scope="module")
def schema():
    return etree.XMLSchema(etree.parse(str(XSD)))


@pytest.fixture(scope="module")
def warning():
    plan = next(p for p in shipped_plans() if p.id == "waterlogging")
    return warning_from_plan(plan, level="Ⅲ", category="自然灾害", area=AREA, sender_name="攸县应急指挥中心",
                             values={"depth": "45"}, expires=SENT + dt.timedelta(hours=6), contact="0731-12345")


def _valid(schema, xml: bytes) -> etree._Element:
    doc = etree.fromstring(xml)
    assert schema.validate(doc), schema.error_log
    return doc


def _text(doc, path: str) -> str:
    return doc.findtext(path.replace("cap:", f"{{{NS}}}"))


def test_an_alert_from_the_plan_template_is_valid_cap(schema, warning):
    doc = _valid(schema, alert_xml(identifier="YX-2026-0001", sender="alerts@yx.citygrid.local", sent=SENT,
                                   status="Actual", msg_type="Alert", warning=warning, incident="INC-7"))
    assert _text(doc, "cap:sent") == "2026-07-03T22:05:09+08:00"                  # seconds, numeric offset
    assert _text(doc, "cap:info/cap:severity") == "Moderate" and _text(doc, "cap:info/cap:category") == "Geo"
    assert _text(doc, "cap:info/cap:headline") == "攸县城区内涝较大预警：攸县联星街道建设路一带"
    assert "45厘米" in _text(doc, "cap:info/cap:description")
    polygon = _text(doc, "cap:info/cap:area/cap:polygon").split()
    assert polygon[0] == polygon[-1] == "27.000000,113.340000" and len(polygon) == 5          # closed, lat,lon


def test_a_drill_is_an_exercise_and_updates_and_cancels_reference_the_original(schema, warning):
    original = Reference("alerts@yx.citygrid.local", "YX-2026-0001", SENT)
    drill = _valid(schema, alert_xml(identifier="YX-2026-0002", sender=original.sender, sent=SENT, status="Exercise",
                                     msg_type="Alert", warning=warning, note="演练 DRILL"))
    assert _text(drill, "cap:status") == "Exercise"
    update = _valid(schema, alert_xml(identifier="YX-2026-0003", sender=original.sender, sent=SENT + dt.timedelta(hours=1),
                                      status="Actual", msg_type="Update", warning=warning, references=[original]))
    assert _text(update, "cap:references") == "alerts@yx.citygrid.local,YX-2026-0001,2026-07-03T22:05:09+08:00"
    cancel = _valid(schema, alert_xml(identifier="YX-2026-0004", sender=original.sender, sent=SENT + dt.timedelta(hours=2),
                                      status="Actual", msg_type="Cancel", warning=None, references=[original],
                                      note="积水已退，预警解除"))
    assert _text(cancel, "cap:msgType") == "Cancel" and cancel.find(f"{{{NS}}}info") is None
    with pytest.raises(ValueError, match="references"):
        alert_xml(identifier="x", sender="s", sent=SENT, status="Actual", msg_type="Cancel", warning=None)


def test_the_official_example_validates_so_the_schema_check_can_fail(schema):
    example = (XSD.parent / "cap-example-amber.xml").read_bytes()
    assert schema.validate(etree.fromstring(example))
    broken = example.replace(b"<status>Actual</status>", b"<status>Maybe</status>")
    assert not schema.validate(etree.fromstring(broken))
