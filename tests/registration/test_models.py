"""The registration data model on both databases: ids, timestamps, and the constraints the
database itself enforces (so a bug in code cannot over-fill a section or duplicate a row)."""

from __future__ import annotations

import uuid
from datetime import UTC, time

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from portal.models import Meeting, Registration, Section
from tests.conftest import BOTH_DATABASES
from tests.factories import make_section, make_term, make_user, now

pytestmark = BOTH_DATABASES


def test_ids_are_uuids_made_by_the_application(db):
    section = make_section(db)
    db.commit()
    assert isinstance(section.id, uuid.UUID)
    db.expire_all()
    assert db.scalar(select(Section.id).where(Section.id == section.id)) == section.id


def test_timestamps_are_aware_utc_and_updated_on_change(db):
    section = make_section(db)
    db.commit()
    created, updated = section.created_at, section.updated_at
    assert created.tzinfo is UTC and updated.tzinfo is UTC
    section.room = "C-200"
    db.commit()
    db.expire_all()
    assert section.created_at == created
    assert section.updated_at >= updated and section.updated_at.tzinfo is UTC


def test_one_registration_row_per_student_and_section(db):
    student, section = make_user(db), make_section(db)
    db.add(Registration(student_id=student.id, section_id=section.id, status="enrolled"))
    db.flush()
    db.add(Registration(student_id=student.id, section_id=section.id, status="waitlisted"))
    with pytest.raises(IntegrityError):
        db.flush()
    db.rollback()


def test_database_refuses_to_overfill_a_section(db):
    section = make_section(db, capacity=1, waitlist_capacity=0)
    db.execute(update(Section).where(Section.id == section.id).values(enrolled_count=1))
    with pytest.raises(IntegrityError):
        db.execute(update(Section).where(Section.id == section.id).values(enrolled_count=2))
    db.rollback()


def test_database_refuses_a_negative_waitlist(db):
    section = make_section(db)
    with pytest.raises(IntegrityError):
        db.execute(update(Section).where(Section.id == section.id).values(waitlist_count=-1))
    db.rollback()


def test_unknown_status_is_refused(db):
    student, section = make_user(db), make_section(db)
    db.add(Registration(student_id=student.id, section_id=section.id, status="maybe"))
    with pytest.raises(IntegrityError):
        db.flush()
    db.rollback()


def test_foreign_keys_are_enforced(db):
    student = make_user(db)
    db.add(Registration(student_id=student.id, section_id=uuid.uuid4(), status="enrolled"))
    with pytest.raises(IntegrityError):
        db.flush()
    db.rollback()


def test_meeting_must_end_after_it_starts(db):
    section = make_section(db, meetings=[])
    db.add(Meeting(section=section, weekday=1, starts_at=time(10, 0), ends_at=time(9, 0)))
    with pytest.raises(IntegrityError):
        db.flush()
    db.rollback()


def test_term_registration_window_must_be_in_order(db):
    with pytest.raises(IntegrityError):
        make_term(db, registration_opens_at=now(), registration_closes_at=now().replace(year=2000))
    db.rollback()


def test_section_lists_meetings_in_week_order(db):
    section = make_section(db, meetings=[(3, "14:00", "15:00"), (0, "09:00", "10:00")])
    db.commit()
    db.expire_all()
    assert [m.label for m in db.get(Section, section.id).meetings] == [
        "Mon 09:00–10:00",
        "Thu 14:00–15:00",
    ]
