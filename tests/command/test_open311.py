"""Open311 GeoReport v2 at /open311/v2/: discovery, services, service definitions, posting and
reading requests in JSON and XML, GeoReport errors, idempotent replays, media, privacy."""
from __future__ import annotations

import datetime as dt
import io
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from command.apikeys import create_key
from command.auth import create_user
from tests.conftest import PASSWORD
from workflows.case_rules import ActionRequest
from workflows.cases import NewReport, act, report
from workflows.photos import store_photo

V2 = "/open311/v2"
INSIDE = {"lat": "27.0005", "long": "113.3405"}          # grid 430223001001001 of the tiny city
PHONE, EMAIL = "13812345678", "zhang.san@example.com"


# ---------------------------------------------------------------- helpers
@pytest.fixture
def key(client, db) -> str:
    return create_key(db, "test", actor="test")


@pytest.fixture
def staff(db, tiny_city):
    """One user per role needed to walk a public case through the loop; the inspector
    patrols community 430223001001, so public reports there become their 核实 task."""
    city = db.execute("SELECT id FROM department WHERE name = %s", (tiny_city["city_dept"],)).fetchone()["id"]
    db.execute("INSERT INTO area_department (area_code, dept_id) VALUES ('430223001', %s)", (city,))
    db.commit()
    made = {"city_dept_id": city}
    for role, extra in (("operator", {}), ("shift_lead", {}), ("dispatcher", {}),
                        ("department", {"dept": tiny_city["city_dept"]}),
                        ("inspector", {"areas": ["430223001001"]})):
        made[role] = create_user(db, username=role, password=PASSWORD, role=role, actor="test", **extra)
    return made


def jpeg(colour=(30, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), colour).save(buf, "JPEG")
    return buf.getvalue()


def post(client, key: str | None, fmt: str = "json", headers=None, files=None, **fields):
    data = {"service_code": "0102", **INSIDE, "description": "路边有暴露垃圾", **fields}
    if key is not None:
        data["api_key"] = key
    data = {k: v for k, v in data.items() if v is not None}
    return client.post(f"{V2}/requests.{fmt}", data=data, headers=headers, files=files)


def created_id(response) -> int:
    assert response.status_code in (200, 201), response.text
    return int(response.json()[0]["service_request_id"])


def xml(response) -> ET.Element:
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    assert response.content.startswith(b"<?xml") and b"UTF-8" in response.content[:60]
    return ET.fromstring(response.content)


def georeport_errors(response, status: int, fmt: str = "json") -> list[str]:
    """The descriptions of a GeoReport error answer, checking its shape on the way."""
    assert response.status_code == status, response.text
    if fmt == "xml":
        root = xml(response)
        assert root.tag == "errors"
        items = [(e.findtext("code"), e.findtext("description")) for e in root.findall("error")]
        assert items and all(code == str(status) for code, _ in items)
        return [d for _, d in items]
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert isinstance(body, list) and body and all(e["code"] == status for e in body)
    return [e["description"] for e in body]


def count(db, table: str) -> int:
    n = db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]
    db.commit()
    return n


def walk(db, desk, case_id: int, steps) -> None:
    """Apply (action, user, request, photos) steps on the owner connection and commit."""
    for action, user, request, photos in steps:
        act(db, desk, case_id, action, user, request, photos=photos)
    db.commit()


def walk_to_closed(db, desk, settings, staff, case_id: int) -> int:
    """核实 → 立案 → 派遣 → 签收 → 处置(after photo) → 核查 → 结案; returns the after photo's id."""
    after = lambda: [store_photo(settings.data_dir, jpeg((0, 200, 0)), "after")]   # noqa: E731
    walk(db, desk, case_id, [
        ("confirm", staff["inspector"], None, ()),
        ("file", staff["operator"], None, ()),
        ("dispatch", staff["dispatcher"], ActionRequest(dept_id=staff["city_dept_id"]), ()),
        ("accept", staff["department"], None, ()),
        ("handle", staff["department"], None, after()),
        ("send_check", staff["operator"], None, ()),
        ("check_pass", staff["inspector"], None, after()),
        ("close", staff["shift_lead"], None, ()),
    ])
    photo = db.execute("SELECT id FROM case_photo WHERE case_id = %s AND kind = 'after' ORDER BY id LIMIT 1",
                       (case_id,)).fetchone()["id"]
    db.commit()
    return photo


# ---------------------------------------------------------------- discovery, services, definitions
def test_discovery_in_json_and_xml(client):
    body = client.get(f"{V2}/discovery.json").json()
    endpoint = body["endpoints"][0]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == "http://testserver/open311/v2" and endpoint["type"] == "production"
    assert set(endpoint["formats"]) == {"text/xml", "application/json"}
    assert body["changeset"] and body["contact"] and "apikey create" in body["key_service"]

    root = xml(client.get(f"{V2}/discovery.xml"))
    assert root.tag == "discovery"
    assert [f.text for f in root.findall("endpoints/endpoint/formats/format")] == ["text/xml", "application/json"]
    assert root.findtext("endpoints/endpoint/url") == "http://testserver/open311/v2"


def test_services_list_event_and_part_classes_in_chinese(client):
    r = client.get(f"{V2}/services.json", params={"jurisdiction_id": "430223"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json; charset=utf-8"
    services = {s["service_code"]: s for s in r.json()}
    garbage = services["0102"]
    assert garbage["service_name"] == "暴露垃圾" and garbage["group"] == "市容环境"
    assert garbage["type"] == "realtime" and garbage["metadata"] is True
    assert "4 工作时" in garbage["description"] and "暴露垃圾" in garbage["keywords"].split(",")
    cover = services["P0101"]
    assert cover["service_name"] == "上水井盖" and cover["group"] == "部件·公用设施" and cover["metadata"] is True
    assert "3 工作日" in cover["description"]                 # the flow's default part limit
    assert services["0101"]["service_name"] == "私搭乱建"     # event 0101 and part P0101 both exist

    root = xml(client.get(f"{V2}/services.xml"))
    assert root.tag == "services"
    by_code = {s.findtext("service_code"): s for s in root.findall("service")}
    assert set(by_code) == set(services)
    assert by_code["P0101"].findtext("group") == "部件·公用设施" and by_code["0102"].findtext("metadata") == "true"


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_unknown_jurisdiction_is_a_georeport_404(client, fmt):
    r = client.get(f"{V2}/services.{fmt}", params={"jurisdiction_id": "110101"})
    [message] = georeport_errors(r, 404, fmt)
    assert "110101" in message and "430223" in message


def test_service_definitions_give_the_attributes(client):
    part = client.get(f"{V2}/services/P0114.json").json()
    assert part["service_code"] == "P0114"
    part_id, address_detail = part["attributes"]
    assert list(part_id) == ["variable", "code", "datatype", "required", "datatype_description", "order",
                             "description"]                                    # the spec's order
    assert (part_id["code"], part_id["datatype"], part_id["required"], part_id["order"]) == (
        "part_id", "string", False, 1)
    assert part_id["variable"] is True and "16 位数字" in part_id["datatype_description"]
    assert (address_detail["code"], address_detail["required"], address_detail["order"]) == (
        "address_detail", False, 2)

    event = client.get(f"{V2}/services/0102.json").json()
    assert [a["code"] for a in event["attributes"]] == ["address_detail"]

    root = xml(client.get(f"{V2}/services/P0114.xml"))
    assert root.tag == "service_definition" and root.findtext("service_code") == "P0114"
    codes = [(a.findtext("code"), a.findtext("required"), a.findtext("order"))
             for a in root.findall("attributes/attribute")]
    assert codes == [("part_id", "false", "1"), ("address_detail", "false", "2")]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_unknown_service_definition_is_404(client, fmt):
    for code in ("9999", "P9999", "garbage"):
        [message] = georeport_errors(client.get(f"{V2}/services/{code}.{fmt}"), 404, fmt)
        assert repr(code) in message


# ---------------------------------------------------------------- posting requests
def test_post_json_opens_a_public_case_in_verifying(client, db, key, staff):
    r = post(client, key, address_string="联星街道东正社区", **{"attribute[address_detail]": "3栋门口"})
    assert r.status_code == 201 and r.headers["content-type"] == "application/json; charset=utf-8"
    [answer] = r.json()
    assert set(answer) == {"service_request_id", "service_notice", "account_id"} and answer["account_id"] is None
    case = db.execute("SELECT * FROM case_file WHERE id = %s", (int(answer["service_request_id"]),)).fetchone()
    assert case["state"] == "verifying" and case["source"] == "public" and case["event_class"] == "0102"
    assert case["assignee_id"] == staff["inspector"].id                       # the grid inspector verifies
    assert case["address"] == "联星街道东正社区，3栋门口" and case["description"] == "路边有暴露垃圾"
    assert case["case_no"] in answer["service_notice"] and "核实" in answer["service_notice"]
    trail = db.execute("SELECT actor, detail FROM audit_log WHERE action = 'open311.request'").fetchone()
    assert trail["actor"] == "open311:test" and trail["detail"]["api_key_id"] == 1


def test_post_xml_answers_service_requests(client, db, key):
    r = post(client, key, fmt="xml", device_id="phone-42", account_id="u-7")
    assert r.status_code == 201
    root = xml(r)
    assert root.tag == "service_requests"
    [request] = root.findall("request")
    case_id = int(request.findtext("service_request_id"))
    assert request.find("account_id") is not None and request.find("account_id").text is None     # <account_id/>
    assert db.execute("SELECT state, source FROM case_file WHERE id = %s", (case_id,)).fetchone() == {
        "state": "verifying", "source": "public"}
    detail = db.execute("SELECT detail FROM audit_log WHERE action = 'open311.request'").fetchone()["detail"]
    assert detail["device_id"] == "phone-42" and detail["account_id"] == "u-7"


def test_part_service_is_located_by_its_part_id(client, db, key):
    r = post(client, key, service_code="P0101", lat=None, long=None,
             **{"attribute[part_id]": "4302230101000001"})
    case = db.execute("SELECT kind, part_class, part_id, ST_X(location) AS x FROM case_file WHERE id = %s",
                      (created_id(r),)).fetchone()
    assert case == {"kind": "part", "part_class": "0101", "part_id": "4302230101000001", "x": pytest.approx(113.3405)}
    # a part of another class, and a part id on an event service, are refused
    r = post(client, key, service_code="P0114", **{"attribute[part_id]": "4302230101000001"})
    assert "is of class 0101" in georeport_errors(r, 400)[0]
    r = post(client, key, service_code="0102", **{"attribute[part_id]": "4302230101000001"})
    assert "part services" in georeport_errors(r, 400)[0]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_missing_or_bad_key_is_403_and_writes_nothing(client, db, key, fmt):
    [message] = georeport_errors(post(client, None, fmt=fmt), 403, fmt)
    assert "api_key is required" in message
    [message] = georeport_errors(post(client, "cg_not-a-real-key", fmt=fmt), 403, fmt)
    assert "api_key is not valid" in message
    db.execute("UPDATE api_key SET active = false")
    db.commit()
    georeport_errors(post(client, key, fmt=fmt), 403, fmt)
    assert count(db, "case_file") == 0


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_service_code_missing_or_unknown(client, db, key, fmt):
    [message] = georeport_errors(post(client, key, fmt=fmt, service_code=None), 400, fmt)
    assert "service_code is required" in message
    [message] = georeport_errors(post(client, key, fmt=fmt, service_code="9999"), 404, fmt)
    assert "'9999' is not a service" in message
    georeport_errors(post(client, key, fmt=fmt, service_code="P0101x"), 404, fmt)
    assert count(db, "case_file") == 0


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_location_outside_the_jurisdiction_is_400(client, db, key, fmt):
    r = post(client, key, fmt=fmt, lat="39.9042", long="116.4074")
    [message] = georeport_errors(r, 400, fmt)
    assert "outside the jurisdiction" in message and "116.407400" in message
    assert count(db, "case_file") + count(db, "case_number") + count(db, "audit_log WHERE action LIKE 'case%'") == 0


def test_coordinates_are_required(client, db, key):
    [message] = georeport_errors(post(client, key, lat=None, long=None), 400)
    assert message == "location required (lat and long)"
    [message] = georeport_errors(post(client, key, lat=None, long=None, address_string="联星街道1号"), 400)
    assert message.startswith("location required (lat and long)") and "does not geocode" in message
    assert georeport_errors(post(client, key, lat=None), 400) == ["give both lat and long"]
    problems = georeport_errors(post(client, key, lat="north", long="999"), 400)
    assert len(problems) == 2 and "lat must be a number" in problems[0] and "long must be" in problems[1]
    assert count(db, "case_file") == 0


def test_every_bad_field_is_listed_in_one_answer(client, db, key):
    problems = georeport_errors(post(client, key, fmt="xml", phone="call me", email="nobody",
                                     description="x" * 2001), 400, "xml")
    assert len(problems) == 3
    assert any("description is longer than 2000" in p for p in problems)
    assert any(p.startswith("phone must be") for p in problems) and any("e-mail" in p for p in problems)
    assert count(db, "case_file") == 0


def test_a_body_that_is_not_a_form_is_refused(client, key):
    r = client.post(f"{V2}/requests.json", json={"api_key": key, "service_code": "0102", **INSIDE})
    assert "form-encoded" in georeport_errors(r, 400)[0]


def test_replay_with_the_same_idempotency_key_lands_once(client, db, key):
    headers = {"Idempotency-Key": "phone-7f3a-0001"}
    first = post(client, key, headers=headers)
    again = post(client, key, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert created_id(again) == created_id(first)
    # the same key as attribute[client_ref] is the same request
    as_attribute = post(client, key, **{"attribute[client_ref]": "phone-7f3a-0001"})
    assert created_id(as_attribute) == created_id(first)
    assert count(db, "case_file") == 1 and count(db, "audit_log WHERE action = 'open311.request'") == 1
    # another client's identical key is its own request: keys are scoped per API key
    other = create_key(db, "another app", actor="test")
    assert created_id(post(client, other, headers=headers)) != created_id(first)
    assert count(db, "case_file") == 2
    # a malformed key, or two different ones, are refused
    assert "Idempotency-Key must be" in georeport_errors(post(client, key, headers={"Idempotency-Key": "short"}),
                                                         400)[0]
    r = post(client, key, headers=headers, **{"attribute[client_ref]": "something-else-1"})
    assert "differ" in georeport_errors(r, 400)[0]


# ---------------------------------------------------------------- reading requests
def _ids(response) -> list[int]:
    assert response.status_code == 200, response.text
    return [int(r["service_request_id"]) for r in response.json()]


def test_get_requests_with_filters(client, db, key, staff, settings):
    desk = client.app.state.desk
    garbage = created_id(post(client, key))
    cover = created_id(post(client, key, service_code="P0101", lat=None, long=None,
                            **{"attribute[part_id]": "4302230101000001"}))
    old = created_id(post(client, key, description="很久以前的垃圾"))
    db.execute("UPDATE case_file SET created_at = now() - interval '120 days' WHERE id = %s", (old,))
    db.commit()
    # an inspector's own report is internal work: never listed here
    internal = report(db, desk, NewReport(source="inspector", kind="event", class_code="0102", lon=113.3415,
                                          lat=27.0005), actor=staff["inspector"]).case["id"]
    db.commit()
    walk_to_closed(db, desk, settings, staff, garbage)

    assert _ids(client.get(f"{V2}/requests.json")) == [cover, garbage]            # newest first, last 90 days
    assert _ids(client.get(f"{V2}/requests.json", params={"status": "open"})) == [cover]
    assert _ids(client.get(f"{V2}/requests.json", params={"status": "closed"})) == [garbage]
    assert _ids(client.get(f"{V2}/requests.json", params={"status": "open,closed"})) == [cover, garbage]
    assert _ids(client.get(f"{V2}/requests.json", params={"service_code": "P0101"})) == [cover]
    assert _ids(client.get(f"{V2}/requests.json", params={"service_code": "0102,P0114"})) == [garbage]
    now = dt.datetime.now(dt.timezone.utc)
    window = {"start_date": (now - dt.timedelta(days=130)).isoformat(),
              "end_date": (now - dt.timedelta(days=100)).isoformat()}
    assert _ids(client.get(f"{V2}/requests.json", params=window)) == [old]
    since = {"start_date": (now - dt.timedelta(hours=1)).isoformat()}
    assert _ids(client.get(f"{V2}/requests.json", params=since)) == [cover, garbage]
    # an id list overrides the other filters, and internal cases stay invisible
    ids = f"{old},{garbage},{internal}"
    assert _ids(client.get(f"{V2}/requests.json", params={"service_request_id": ids, "status": "open"})) == [
        garbage, old]

    root = xml(client.get(f"{V2}/requests.xml", params={"status": "closed"}))
    assert root.tag == "service_requests"
    assert [r.findtext("service_request_id") for r in root.findall("request")] == [str(garbage)]


def test_closed_case_reads_closed_with_its_agency(client, db, key, staff, settings, tiny_city):
    case_id = created_id(post(client, key))
    [open_one] = client.get(f"{V2}/requests/{case_id}.json").json()
    assert open_one["status"] == "open" and open_one["status_notes"] == "已受理，等待网格监督员现场核实"
    assert open_one["agency_responsible"] is None and open_one["expected_datetime"] is None
    assert open_one["service_name"] == "暴露垃圾" and open_one["service_code"] == "0102"
    assert open_one["address_id"] == "430223001001001" and open_one["zipcode"] is None
    assert (open_one["lat"], open_one["long"]) == pytest.approx((27.0005, 113.3405))
    assert open_one["requested_datetime"].endswith("+08:00")

    desk = client.app.state.desk
    walk(db, desk, case_id, [("confirm", staff["inspector"], None, ()), ("file", staff["operator"], None, ()),
                             ("dispatch", staff["dispatcher"], ActionRequest(dept_id=staff["city_dept_id"]), ())])
    [dispatched] = client.get(f"{V2}/requests/{case_id}.json").json()
    assert dispatched["status"] == "open" and dispatched["status_notes"] == "已派遣至专业部门处置"
    assert dispatched["agency_responsible"] == tiny_city["city_dept"]
    assert dt.datetime.fromisoformat(dispatched["expected_datetime"]) > dt.datetime.now(dt.timezone.utc)

    rest = [("accept", staff["department"], None, ()),
            ("handle", staff["department"], None, [store_photo(settings.data_dir, jpeg(), "after")]),
            ("send_check", staff["operator"], None, ()),
            ("check_pass", staff["inspector"], None, [store_photo(settings.data_dir, jpeg(), "after")]),
            ("close", staff["shift_lead"], None, ())]
    walk(db, desk, case_id, rest)
    root = xml(client.get(f"{V2}/requests/{case_id}.xml"))
    [closed] = root.findall("request")
    assert closed.findtext("status") == "closed" and closed.findtext("status_notes") == "已结案"
    assert closed.findtext("agency_responsible") == tiny_city["city_dept"]
    assert closed.findtext("updated_datetime") >= closed.findtext("requested_datetime")


def test_a_report_not_filed_reads_closed_with_the_reason(client, db, key, staff):
    case_id = created_id(post(client, key))
    walk(db, client.app.state.desk, case_id, [
        ("dismiss", staff["inspector"], ActionRequest(note="现场未发现垃圾"), ())])
    [one] = client.get(f"{V2}/requests/{case_id}.json").json()
    assert one["status"] == "closed" and one["status_notes"] == "不予立案：现场未发现垃圾"


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_unknown_or_internal_request_is_404(client, db, key, staff, fmt):
    internal = report(db, client.app.state.desk, NewReport(source="hotline", kind="event", class_code="0102",
                                                            lon=113.3405, lat=27.0005), actor=staff["operator"])
    db.commit()
    for request_id in ("999999", "abc", str(internal.case["id"])):
        [message] = georeport_errors(client.get(f"{V2}/requests/{request_id}.{fmt}"), 404, fmt)
        assert "does not exist" in message


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_bad_query_parameters_answer_in_georeport_format(client, fmt):
    cases = [({"status": "pending"}, "status must be"),
             ({"start_date": "yesterday"}, "not an ISO 8601"),
             ({"start_date": "2026-03-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, "after end_date"),
             ({"start_date": "2025-01-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, "at most 90 days"),
             ({"service_code": "garbage"}, "not a service code"),
             ({"service_request_id": "1,x"}, "'x' is not a request number")]
    for params, expected in cases:
        [message] = georeport_errors(client.get(f"{V2}/requests.{fmt}", params=params), 400, fmt)
        assert expected in message, (params, message)


def test_unknown_formats_and_resources_answer_as_georeport(client):
    [message] = georeport_errors(client.get(f"{V2}/services.html"), 404, "xml")
    assert "'html' is not offered" in message
    [message] = georeport_errors(client.get(f"{V2}/tokens/123.json"), 404, "json")
    assert "is not a GeoReport v2 resource" in message
    georeport_errors(client.delete(f"{V2}/requests.json"), 404, "json")


# ---------------------------------------------------------------- privacy and media
def test_reporter_details_never_appear_in_any_answer(client, db, key, staff, settings):
    personal = {"first_name": "三", "last_name": "张", "phone": PHONE, "email": EMAIL}
    json_case = created_id(post(client, key, **personal))
    answers = [post(client, key, fmt="xml", **personal)]
    stored = db.execute("SELECT name, phone, email FROM case_reporter WHERE case_id = %s", (json_case,)).fetchone()
    db.commit()
    assert stored == {"name": "张三", "phone": PHONE, "email": EMAIL}          # kept for the staff
    walk_to_closed(db, client.app.state.desk, settings, staff, json_case)
    for fmt in ("json", "xml"):
        answers += [client.get(f"{V2}/requests.{fmt}"), client.get(f"{V2}/requests/{json_case}.{fmt}"),
                    client.get(f"{V2}/requests.{fmt}", params={"status": "closed"})]
    for answer in answers:
        assert answer.status_code in (200, 201)
        text = answer.content.decode()
        for secret in (PHONE, EMAIL, "张三", "zhang"):
            assert secret not in text


def test_uploaded_media_is_stored_and_served_but_after_photos_are_not(client, db, key, staff, settings):
    r = post(client, key, files={"media": ("pothole.jpg", jpeg(), "image/jpeg")},
             media_url="http://example.invalid/photo.jpg")
    case_id = created_id(r)
    photo = db.execute("SELECT id, kind FROM case_photo WHERE case_id = %s", (case_id,)).fetchone()
    description = db.execute("SELECT description FROM case_file WHERE id = %s", (case_id,)).fetchone()["description"]
    db.commit()
    assert photo["kind"] == "report" and "[附件链接] http://example.invalid/photo.jpg" in description

    [listed] = client.get(f"{V2}/requests/{case_id}.json").json()
    assert listed["media_url"] == f"http://testserver{V2}/media/{photo['id']}.jpg"
    served = client.get(listed["media_url"])
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(served.content)).size == (320, 240)

    after_id = walk_to_closed(db, client.app.state.desk, settings, staff, case_id)
    [closed] = client.get(f"{V2}/requests/{case_id}.json").json()
    assert closed["media_url"] == listed["media_url"]                         # still the reporter's photo
    assert "does not exist" in georeport_errors(client.get(f"{V2}/media/{after_id}.jpg"), 404, "xml")[0]
    # a report photo of an internal (inspector) case is not public either
    internal = report(db, client.app.state.desk, NewReport(source="inspector", kind="event", class_code="0102",
                                                            lon=113.3405, lat=27.0005), actor=staff["inspector"],
                      photos=[store_photo(settings.data_dir, jpeg((9, 9, 9)), "report")]).case["id"]
    inside = db.execute("SELECT id FROM case_photo WHERE case_id = %s", (internal,)).fetchone()["id"]
    db.commit()
    georeport_errors(client.get(f"{V2}/media/{inside}.jpg"), 404, "xml")
    georeport_errors(client.get(f"{V2}/media/{photo['id']}.png"), 404, "xml")   # wrong extension


def test_media_that_is_not_an_image_is_refused_and_writes_nothing(client, db, key):
    r = post(client, key, fmt="xml", files={"media": ("notes.txt", b"hello", "text/plain")})
    assert "not a readable image" in georeport_errors(r, 400, "xml")[0]
    assert count(db, "case_file") == 0 and count(db, "case_photo") == 0
