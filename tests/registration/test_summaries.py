"""My registrations' read-only summaries hold what the ORM's registrations hold, in the same
order, and the page and the API show them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import contains_eager, selectinload

from portal.extensions import db as _db
from portal.models import Registration, Section, Term
from portal.registration.services import drop_blocker
from portal.registration.summaries import registration_summaries
from tests import factories
from tests.conftest import BOTH_DATABASES

pytestmark = BOTH_DATABASES


def _as_seen(registration, now) -> dict:
    """What the page, the API and drop_blocker read of a registration."""
    section = registration.section
    return {
        "id": registration.id,
        "section_id": registration.section_id,
        "status": registration.status,
        "waitlist_position": registration.waitlist_position,
        "registered_at": registration.registered_at,
        "enrolled_at": registration.enrolled_at,
        "dropped_at": registration.dropped_at,
        "final_grade": registration.final_grade,
        "section": (section.id, section.number, section.label),
        "course": (section.course.code, section.course.title, section.course.credits),
        "term": (section.term.code, section.term.name, section.term.add_drop_deadline),
        "meetings": [(m.weekday, m.label, m.kind, m.deleted_at is None) for m in section.meetings],
        "drop_blocker": drop_blocker(registration, now),
    }


def _orm_registrations(session, student_id):
    return session.scalars(
        select(Registration)
        .where(Registration.student_id == student_id)
        .join(Registration.section)
        .join(Section.term)
        .join(Section.course)
        .order_by(Term.starts_on.desc(), Registration.registered_at)
        .options(
            contains_eager(Registration.section).options(
                contains_eager(Section.term),
                contains_eager(Section.course),
                selectinload(Section.meetings),
            )
        )
    ).all()


def test_summaries_match_the_registrations(app):
    with app.app_context():
        session = _db.session
        student = factories.make_user(session, "student")
        other = factories.make_user(session, "student")
        now = factories.now()
        open_term = factories.make_term(session, code="2027-S", name="Spring 2027")
        closed = factories.make_term(session, state="past-drop", code="2026-F", name="Fall 2026")
        enrolled = factories.enrol(
            session,
            student,
            factories.make_section(
                session, term=open_term, meetings=[(0, "09:00", "10:00"), (2, "09:00", "10:00")]
            ),
        )
        enrolled.registered_at = now - timedelta(days=2)
        waitlisted = Registration(
            student_id=student.id,
            section_id=factories.make_section(session, term=open_term).id,
            status="waitlisted",
            waitlist_position=3,
            registered_at=now - timedelta(days=1),
        )
        dropped = Registration(
            student_id=student.id,
            section_id=factories.make_section(session, term=open_term, meetings=[]).id,
            status="dropped",
            dropped_at=now,
            registered_at=now,
        )
        session.add_all([waitlisted, dropped])
        graded = factories.enrol(session, student, factories.make_section(session, term=closed))
        graded.final_grade = "B+"
        factories.enrol(session, other, factories.make_section(session, term=open_term))
        session.commit()

        summaries = registration_summaries(session, student.id)
        expected = [_as_seen(r, now) for r in _orm_registrations(session, student.id)]
        assert [_as_seen(s, now) for s in summaries] == expected
        assert [s.status for s in summaries] == ["enrolled", "waitlisted", "dropped", "enrolled"]
        assert registration_summaries(session, factories.make_user(session, "student").id) == []


def test_the_page_and_the_api_list_them(app, client, login_as):
    student = login_as("student")
    with app.app_context():
        section = factories.make_section(_db.session, meetings=[(1, "13:00", "14:30")])
        factories.enrol(_db.session, student, section)
        _db.session.commit()
        label, title = section.label, section.course.title
    page = client.get("/registrations").get_data(as_text=True)
    assert label in page and title in page and "Tue 13:00–14:30" in page and "Drop" in page
    items = client.get("/api/v1/me/registrations").get_json()["items"]
    assert [(i["section_label"], i["course_title"], i["status"]) for i in items] == [
        (label, title, "enrolled")
    ]
