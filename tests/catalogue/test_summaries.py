"""The catalogue search's read-only section summaries hold what the ORM's sections hold."""

from __future__ import annotations

from portal.catalogue import services
from portal.catalogue.summaries import section_summaries
from portal.extensions import db as _db
from portal.models import Course
from tests import factories
from tests.conftest import BOTH_DATABASES

pytestmark = BOTH_DATABASES


def _as_seen(section) -> dict:
    """What the catalogue page and the API read of a section."""
    return {
        "id": section.id,
        "course_id": section.course_id,
        "label": section.label,
        "number": section.number,
        "term": (section.term.code, section.term.name),
        "room": section.room,
        "capacity": section.capacity,
        "enrolled_count": section.enrolled_count,
        "seats_left": section.seats_left,
        "waitlist_capacity": section.waitlist_capacity,
        "waitlist_count": section.waitlist_count,
        "meetings": [
            (m.weekday, m.label, m.starts_at, m.ends_at, m.kind, m.deleted_at is None)
            for m in section.meetings
        ],
    }


def test_summaries_match_the_sections_of_every_term_and_of_one(app):
    with app.app_context():
        db = _db.session
        spring = factories.make_term(db, code="2027-S", name="Spring 2027")
        fall = factories.make_term(db, code="2027-F", name="Fall 2027")
        quantum = factories.make_course(db, code="PHY301", title="Quantum Mechanics")
        poetry = factories.make_course(db, code="ENG210", title="Modern Poetry")
        full = factories.make_section(
            db, course=quantum, term=spring, capacity=2, meetings=[(3, "14:00", "15:30")]
        )
        full.enrolled_count, full.waitlist_count = 2, 1
        busy = factories.make_section(
            db,
            course=quantum,
            term=fall,
            meetings=[(4, "10:00", "11:00"), (0, "08:15", "09:45"), (0, "07:00", "08:00")],
        )
        busy.meetings[0].deleted_at = factories.now()  # a meeting taken off the timetable
        gone = factories.make_section(db, course=quantum, term=fall)
        gone.deleted_at = factories.now()  # a deleted section is not listed
        factories.make_section(db, course=poetry, term=spring, meetings=[])
        db.commit()

        courses = list(db.query(Course).order_by(Course.code))
        for term_code in ("", "2027-S", "2027-F", "1999-X"):
            db.expire_all()
            expected = {
                course_id: [_as_seen(s) for s in sections]
                for course_id, sections in services.sections_for_courses(
                    db, courses, term_code
                ).items()
            }
            found = {
                course_id: [_as_seen(s) for s in sections]
                for course_id, sections in section_summaries(db, courses, term_code).items()
            }
            assert found == expected, term_code
        assert len(expected) == 0  # the last, unknown term: nothing
        every = section_summaries(db, courses)
        assert [len(m) for m in (s.meetings for s in every[quantum.id])] == [1, 3]
        assert every[quantum.id][0].seats_left == 0 and every[quantum.id][0].label == "PHY301-" + (
            full.number
        )
        assert section_summaries(db, []) == {}
