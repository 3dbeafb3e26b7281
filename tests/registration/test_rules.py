"""Every registration rule, and the message a student reads when it refuses."""

from __future__ import annotations

import pytest

from portal.errors import RegistrationError
from portal.registration import services
from tests.conftest import BOTH_DATABASES
from tests.factories import (
    make_completed,
    make_course,
    make_prerequisite,
    make_section,
    make_term,
    make_user,
    now,
)

pytestmark = BOTH_DATABASES  # every rule must hold on SQLite and on PostgreSQL


def test_enrols_when_a_seat_is_free(db):
    student = make_user(db)
    section = make_section(db, capacity=2)
    registration = services.register(db, student, section, now=now())
    assert registration.status == "enrolled"
    assert registration.waitlist_position is None
    assert section.enrolled_count == 1


def test_waitlists_when_full_and_refuses_when_waitlist_full(db):
    section = make_section(db, capacity=1, waitlist_capacity=1)
    first, second, third = (make_user(db) for _ in range(3))
    assert services.register(db, first, section, now=now()).status == "enrolled"
    waitlisted = services.register(db, second, section, now=now())
    assert (waitlisted.status, waitlisted.waitlist_position) == ("waitlisted", 1)
    with pytest.raises(RegistrationError, match="is full and its waitlist is full too"):
        services.register(db, third, section, now=now())
    assert (section.enrolled_count, section.waitlist_count) == (1, 1)


def test_registration_window_not_yet_open(db):
    section = make_section(db, term=make_term(db, state="upcoming"))
    with pytest.raises(RegistrationError, match="opens on"):
        services.register(db, make_user(db), section, now=now())


def test_registration_window_closed(db):
    section = make_section(db, term=make_term(db, state="closed"))
    with pytest.raises(RegistrationError, match="closed on"):
        services.register(db, make_user(db), section, now=now())


def test_drop_after_deadline_is_refused(db):
    term = make_term(db, state="open")
    section = make_section(db, term=term)
    registration = services.register(db, make_user(db), section, now=now())
    term.add_drop_deadline = now().replace(year=now().year - 1)
    with pytest.raises(RegistrationError, match="add/drop deadline"):
        services.drop(db, registration, now=now())


def test_duplicate_registration_is_refused(db):
    student = make_user(db)
    section = make_section(db)
    services.register(db, student, section, now=now())
    with pytest.raises(RegistrationError, match="already enrolled"):
        services.register(db, student, section, now=now())


def test_second_section_of_the_same_course_is_refused(db):
    student = make_user(db)
    term = make_term(db)
    course = make_course(db)
    services.register(db, student, make_section(db, course=course, term=term), now=now())
    with pytest.raises(RegistrationError, match="another section of"):
        services.register(db, student, make_section(db, course=course, term=term), now=now())


def test_duplicate_waitlist_entry_is_refused(db):
    section = make_section(db, capacity=0, waitlist_capacity=3)
    student = make_user(db)
    services.register(db, student, section, now=now())
    with pytest.raises(RegistrationError, match="already on the waitlist"):
        services.register(db, student, section, now=now())


def test_missing_prerequisite_names_course_and_grade(db):
    basics = make_course(db, code="MAT100")
    advanced = make_course(db, code="MAT200")
    make_prerequisite(db, advanced, basics, min_grade="C")
    with pytest.raises(RegistrationError, match="MAT200 requires MAT100 with C or better"):
        services.register(db, make_user(db), make_section(db, course=advanced), now=now())


def test_prerequisite_with_too_low_grade_is_refused_and_good_grade_accepted(db):
    basics = make_course(db)
    advanced = make_course(db)
    make_prerequisite(db, advanced, basics, min_grade="C")
    weak, strong = make_user(db), make_user(db)
    make_completed(db, weak, basics, "D+")
    make_completed(db, strong, basics, "B-")
    term = make_term(db)
    section = make_section(db, course=advanced, term=term)
    with pytest.raises(RegistrationError, match="requires"):
        services.register(db, weak, section, now=now())
    assert services.register(db, strong, section, now=now()).status == "enrolled"


def test_meeting_time_conflict_names_both_sections(db):
    student = make_user(db)
    term = make_term(db)
    first = make_section(db, term=term, meetings=[(0, "10:00", "11:30")])
    clash = make_section(db, term=term, meetings=[(0, "11:00", "12:00")])
    services.register(db, student, first, now=now())
    with pytest.raises(RegistrationError, match=f"clashes with {first.label}"):
        services.register(db, student, clash, now=now())


def test_back_to_back_meetings_do_not_conflict(db):
    student = make_user(db)
    term = make_term(db)
    services.register(
        db, student, make_section(db, term=term, meetings=[(1, "09:00", "10:00")]), now=now()
    )
    later = make_section(db, term=term, meetings=[(1, "10:00", "11:00")])
    assert services.register(db, student, later, now=now()).status == "enrolled"


def test_credit_limit(db):
    student = make_user(db)
    term = make_term(db, max_credits=7)
    services.register(
        db, student, make_section(db, term=term, course=make_course(db, credits=4)), now=now()
    )
    too_much = make_section(db, term=term, course=make_course(db, credits=4))
    with pytest.raises(RegistrationError, match="would bring you to 8 credits; the limit"):
        services.register(db, student, too_much, now=now())


def test_only_students_register(db):
    with pytest.raises(RegistrationError, match="Only students"):
        services.register(db, make_user(db, "instructor"), make_section(db), now=now())


def test_drop_promotes_first_waitlisted_student(db):
    section = make_section(db, capacity=1, waitlist_capacity=3)
    holder, first_waiting, second_waiting = (make_user(db) for _ in range(3))
    seat = services.register(db, holder, section, now=now())
    one = services.register(db, first_waiting, section, now=now())
    two = services.register(db, second_waiting, section, now=now())
    promoted = services.drop(db, seat, now=now())
    assert promoted is one
    assert one.status == "enrolled" and one.waitlist_position is None
    assert two.status == "waitlisted"
    assert (section.enrolled_count, section.waitlist_count) == (1, 1)


def test_leaving_the_waitlist_frees_a_place(db):
    section = make_section(db, capacity=0, waitlist_capacity=1)
    waiting = services.register(db, make_user(db), section, now=now())
    assert services.drop(db, waiting, now=now()) is None
    assert section.waitlist_count == 0
    assert services.register(db, make_user(db), section, now=now()).status == "waitlisted"


def test_dropped_student_can_register_again(db):
    student = make_user(db)
    section = make_section(db)
    registration = services.register(db, student, section, now=now())
    services.drop(db, registration, now=now())
    again = services.register(db, student, section, now=now())
    assert again.id == registration.id and again.status == "enrolled"


def test_dropping_twice_is_refused(db):
    registration = services.register(db, make_user(db), make_section(db), now=now())
    services.drop(db, registration, now=now())
    with pytest.raises(RegistrationError, match="already dropped"):
        services.drop(db, registration, now=now())
