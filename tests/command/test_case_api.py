"""The case API over HTTP: intake with photos, actions, errors a person can act on."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from command.auth import create_user
from tests.conftest import PASSWORD
from tests.workflows.conftest import jpeg


@pytest.fixture
def staff(client, db, tiny_city):
    """Bearer headers for one user of each role; the city bureau is the area's department."""
    city = db.execute("SELECT id FROM department WHERE name = %s", (tiny_city["city_dept"],)).fetchone()["id"]
    db.execute("INSERT INTO area_department (area_code, dept_id) VALUES ('430223001', %s)", (city,))
    db.commit()
    headers = {}
    for role, extra in (("operator", {}), ("shift_lead", {}), ("dispatcher", {}), ("leader", {}),
                        ("department", {"dept": tiny_city["city_dept"]}),
                        ("inspector", {"areas": ["430223001001"]}),
                        ("water", {"dept": tiny_city["water_dept"]})):
        create_user(db, username=role, password=PASSWORD, role="department" if role == "water" else role,
                    actor="test", **extra)
        token = client.post("/api/auth/token", data={"username": role, "password": PASSWORD}).json()["access_token"]
        headers[role] = {"Authorization": f"Bearer {token}"}
    headers["city_dept_id"] = city
    return headers


def _report(client, headers, *, photos=(), **fields):
    data = {"class_code": "0102", "lon": "113.3405", "lat": "27.0005", "description": "路边暴露垃圾", **fields}
    files = [("photos", (f"p{i}.jpg", body, "image/jpeg")) for i, body in enumerate(photos)]
    return client.post("/api/cases", headers=headers, data=data, files=files or None)


def test_inspector_reports_with_a_photo_whose_exif_is_stripped(client, staff, settings):
    r = _report(client, staff["inspector"], photos=[jpeg(exif_gps=True)])
    assert r.status_code == 201, r.text
    case = r.json()["case"]
    assert case["state"] == "reported" and case["source"] == "inspector"
    detail = client.get(f"/api/cases/{case['id']}", headers=staff["operator"]).json()
    photo = detail["photos"][0]
    full = client.get(f"/api/cases/{case['id']}/photos/{photo['id']}", headers=staff["operator"])
    assert full.status_code == 200
    img = Image.open(io.BytesIO(full.content))
    assert img.size == (640, 480) and not img.getexif()                  # no GPS, no camera make
    thumb = client.get(f"/api/cases/{case['id']}/photos/{photo['id']}?thumb=1", headers=staff["operator"])
    assert max(Image.open(io.BytesIO(thumb.content)).size) == 320


def test_photos_are_served_only_to_those_who_may_see_the_case(client, staff):
    case = _report(client, staff["inspector"], photos=[jpeg()]).json()["case"]
    photo_id = client.get(f"/api/cases/{case['id']}", headers=staff["operator"]).json()["photos"][0]["id"]
    assert client.get(f"/api/cases/{case['id']}/photos/{photo_id}", headers=staff["water"]).status_code == 404
    assert client.get(f"/api/cases/{case['id']}/photos/{photo_id}").status_code == 401


@pytest.mark.parametrize("body, message", [
    (b"%PDF-1.4 not an image", "not a readable image"),
    (b"", "empty"),
])
def test_bad_uploads_are_refused_and_nothing_is_written(client, staff, db, body, message):
    r = _report(client, staff["inspector"], photos=[body])
    assert r.status_code == 422 and message in r.json()["message"]
    assert db.execute("SELECT count(*) AS n FROM case_file").fetchone()["n"] == 0


def test_oversize_upload_is_refused(client, staff, db):
    big = b"\xff\xd8\xff" + b"0" * (10 * 1024 * 1024 + 10)
    r = _report(client, staff["inspector"], photos=[big])
    assert r.status_code == 422 and "larger than the 10 MB allowed" in r.json()["message"]
    assert db.execute("SELECT count(*) AS n FROM case_file").fetchone()["n"] == 0


def test_gif_is_not_accepted(client, staff):
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, "GIF")
    r = _report(client, staff["inspector"], photos=[buf.getvalue()])
    assert r.status_code == 422 and "send JPEG, PNG or WebP" in r.json()["message"]


def test_hotline_intake_starts_in_verification(client, staff):
    r = _report(client, staff["operator"], reporter_name="王女士", reporter_phone="0731-2222333")
    case = r.json()["case"]
    assert case["source"] == "hotline" and case["state"] == "verifying"


def test_roles_that_do_not_take_reports_are_refused(client, staff):
    r = _report(client, staff["dispatcher"])
    assert r.status_code == 403 and "dispatcher" in r.json()["message"]


def test_outside_the_jurisdiction_and_unknown_class_are_clear_422s(client, staff):
    far = _report(client, staff["inspector"], lon="112.9", lat="28.2")
    assert far.status_code == 422 and "outside the jurisdiction" in far.json()["message"]
    unknown = _report(client, staff["inspector"], class_code="0999")
    assert unknown.status_code == 422 and "not in the catalog" in unknown.json()["message"]


def test_replayed_offline_submission_returns_the_same_case(client, staff, db):
    one = _report(client, staff["inspector"], client_ref="m-2f9c1e77-0001").json()
    two = _report(client, staff["inspector"], client_ref="m-2f9c1e77-0001").json()
    assert two["replayed"] and two["case"]["id"] == one["case"]["id"]
    assert db.execute("SELECT count(*) AS n FROM case_file").fetchone()["n"] == 1


def test_actions_over_http_with_clear_409_and_403(client, staff):
    case = _report(client, staff["inspector"]).json()["case"]
    url = f"/api/cases/{case['id']}/actions"
    assert client.post(f"{url}/file", headers=staff["operator"]).status_code == 200
    again = client.post(f"{url}/file", headers=staff["operator"])
    assert again.status_code == 409 and "is filed (已立案)" in again.json()["message"]
    wrong = client.post(f"{url}/close", headers=staff["dispatcher"])
    assert wrong.status_code == 409
    no_dept = client.post(f"{url}/dispatch", headers=staff["dispatcher"])
    assert no_dept.status_code == 422 and "choose the department" in no_dept.json()["message"]
    ok = client.post(f"{url}/dispatch", headers=staff["dispatcher"], data={"dept_id": staff["city_dept_id"]})
    assert ok.status_code == 200 and ok.json()["state"] == "dispatched"
    forbidden = client.post(f"{url}/accept", headers=staff["operator"])
    assert forbidden.status_code == 403 and "is for department" in forbidden.json()["message"]
    detail = client.get(f"/api/cases/{case['id']}", headers=staff["department"]).json()
    assert [a["action"] for a in detail["allowed_actions"]] == ["accept", "return", "request_extension"]
    handled = client.post(f"{url}/accept", headers=staff["department"])
    assert handled.json()["state"] == "in_progress"
    done = client.post(f"{url}/handle", headers=staff["department"], data={"photo_kind": "after"},
                       files=[("photos", ("after.jpg", jpeg((0, 180, 0)), "image/jpeg"))])
    assert done.status_code == 200 and done.json()["state"] == "handled"


def test_list_filters_over_http(client, staff):
    _report(client, staff["inspector"])
    _report(client, staff["inspector"], lon="113.3425")
    rows = client.get("/api/cases?state=reported&area=430223001002", headers=staff["operator"]).json()["cases"]
    assert len(rows) == 1 and rows[0]["grid_code"].startswith("430223001002")
    assert client.get("/api/cases?due=purple", headers=staff["operator"]).status_code == 422
    assert client.get("/api/cases?state=lost", headers=staff["operator"]).status_code == 422


def test_notifications_reach_the_right_people(client, staff):
    case = _report(client, staff["inspector"]).json()["case"]
    mine = client.get("/api/notifications", headers=staff["operator"]).json()
    assert [n["kind"] for n in mine] == ["case.to_file"] and mine[0]["case_id"] == case["id"]
    assert client.get("/api/notifications", headers=staff["dispatcher"]).json() == []
    assert client.post(f"/api/notifications/{mine[0]['id']}/read", headers=staff["operator"]).status_code == 204
    assert client.get("/api/notifications", headers=staff["operator"]).json() == []
    assert client.post(f"/api/notifications/{mine[0]['id']}/read", headers=staff["dispatcher"]).status_code == 404
