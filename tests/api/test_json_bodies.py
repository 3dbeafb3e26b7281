"""The API's JSON bodies (orjson): the same values as Flask's own encoder gives, as UTF-8."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid

from flask.json.provider import DefaultJSONProvider

from portal.extensions import db as _db
from portal.models import User


def test_an_answer_means_what_flasks_encoder_says_and_is_sent_as_utf8(app, api_as, world):
    with app.app_context():
        student = _db.session.get(User, world.users["student"])
        student.full_name = "Zoë Ødegård-Núñez 王"
        _db.session.commit()
    response = api_as("student").get("/api/v1/me")
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_data()
    assert "Zoë Ødegård-Núñez 王".encode() in body  # not \u escapes
    assert body.endswith(b"\n")
    value = json.loads(body)
    assert value["full_name"] == "Zoë Ødegård-Núñez 王"
    with app.test_request_context():
        flasks = DefaultJSONProvider(app).response(value).get_data()
    assert json.loads(flasks) == value
    assert list(value) == sorted(value)  # keys sorted, as Flask sorts them


def test_values_json_cannot_hold_go_through_flasks_conversions(app):
    moment = datetime.datetime(2026, 12, 7, 14, 5, tzinfo=datetime.UTC)
    values = {
        "b": [uuid.UUID(int=7), decimal.Decimal("2.50")],
        "a": {"when": moment, "day": datetime.date(2026, 12, 7)},
        "big": 2**70,  # past 64 bits: Flask's encoder answers
    }
    with app.test_request_context():
        ours = app.json.response(values).get_data()
        flasks = DefaultJSONProvider(app).response(values).get_data()
    assert json.loads(ours) == json.loads(flasks)
    assert json.loads(ours)["a"]["when"] == "Mon, 07 Dec 2026 14:05:00 GMT"


def test_the_catalogue_search_answers_what_its_documented_schema_dumps(app, api_as, world):
    """The search builds its body itself (a quarter of the traffic): the same as
    CoursePageSchema's dump, deleted meetings left out, for every course and section."""
    from portal.api import schemas
    from portal.catalogue import services
    from portal.models import Section
    from tests import factories

    with app.app_context():
        db = _db.session
        section = db.get(Section, world.section_id)
        extra = factories.make_section(
            db,
            course=section.course,
            term=section.term,
            meetings=[(0, "08:15", "09:45"), (2, "13:00", "14:30"), (4, "10:00", "11:00")],
        )
        extra.room = "Hörsaal Ü-1"
        extra.meetings[1].deleted_at = factories.now()  # a meeting removed from the timetable
        extra.enrolled_count = 3
        db.commit()
        term_code, course_code = section.term.code, section.course.code
    response = api_as("student").get(f"/api/v1/courses?q={course_code}&term={term_code}")
    assert response.status_code == 200 and 'rel="self"' in response.headers["Link"]
    body = response.get_json()
    assert body["total"] == 1 and len(body["items"][0]["sections"]) == 2
    with app.test_request_context(f"/api/v1/courses?q={course_code}&term={term_code}"):
        db = _db.session
        filters = services.CatalogueFilter(text=course_code, term_code=term_code, department="")
        courses = list(db.scalars(services.search_courses_query(db, filters)))
        sections = services.sections_for_courses(db, courses, term_code)
        expected = schemas.CourseSchema(many=True).dump(
            [schemas.Extended(c, sections=sections.get(c.id, [])) for c in courses]
        )
    assert body["items"] == expected
    meetings = [len(s["meetings"]) for s in body["items"][0]["sections"]]
    assert sorted(meetings) == [1, 2]
