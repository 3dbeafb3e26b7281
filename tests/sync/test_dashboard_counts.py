"""The dashboard's counts (kept by triggers on each database, never synced) follow changes that
arrive by sync: a device's attendance pushed to the server, and the server's final grades,
attendance changes and deletions pulled by an admin's device."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.admin import dashboard
from portal.attendance.services import record_attendance
from portal.extensions import db as _db
from portal.models import AttendanceRecord, LabSession, Registration, Section, User
from tests import factories
from tests.admin.test_dashboard_counts import (
    assert_counts_match_rows,
    direct_attendance,
    direct_grades,
    shown_attendance,
    shown_grades,
)
from tests.sync.conftest import as_user

ON_BOTH = pytest.mark.parametrize("server_database", ["sqlite", "postgresql"], indirect=True)


def _figures(app):
    """(grades, attendance) the dashboard shows for all terms, checked against the rows."""
    with app.app_context():
        db = _db.session
        assert_counts_match_rows(db)
        figures = dashboard.build(db, term_code="all")
        assert shown_grades(figures) == direct_grades(db)
        assert shown_attendance(figures) == direct_attendance(db)
        return shown_grades(figures), shown_attendance(figures)


@ON_BOTH
def test_counts_follow_changes_that_arrive_by_sync(campus, make_device, server):
    with server.app_context():
        section = _db.session.get(Section, campus.section)
        lab_id = factories.make_lab_session(_db.session, section).id
        department = section.course.department
        _db.session.commit()
    admin_laptop = make_device("admin1")
    lab_laptop = make_device("lab1")
    first, second = campus.students[:2]

    # Recorded offline on the lab PC, pushed to the server.
    with lab_laptop.session():
        as_user(lab_laptop.app, campus.lab_staff)
        staff = _db.session.get(User, campus.lab_staff)
        lab = _db.session.get(LabSession, lab_id)
        record_attendance(_db.session, staff, lab, first, "present")
        record_attendance(_db.session, staff, lab, second, "absent")
        _db.session.commit()
    assert lab_laptop.sync().pushed == 2
    assert _figures(server) == ({}, {department: (2, 1, 1, 0)})

    # Pulled by the admin's device: new rows.
    admin_laptop.sync()
    assert _figures(admin_laptop.app) == ({}, {department: (2, 1, 1, 0)})

    # Changed on the server: final grades, a status, then one record deleted; pulled again
    # (rows updated in place by the device's upsert, and a deletion).
    with server.app_context():
        as_user(server, campus.admin)
        for registration in _db.session.scalars(
            select(Registration).where(Registration.section_id == campus.section)
        ):
            registration.final_grade = "A" if registration.student_id == first else "C"
        record = _db.session.scalar(select(AttendanceRecord).filter_by(student_id=second))
        record.status = "excused"
        _db.session.commit()
    admin_laptop.sync()
    assert _figures(admin_laptop.app) == ({"A": 1, "C": 1}, {department: (2, 1, 0, 1)})

    with server.app_context():
        as_user(server, campus.admin)
        _db.session.delete(_db.session.scalar(select(AttendanceRecord).filter_by(student_id=first)))
        regraded = _db.session.scalar(select(Registration).filter_by(student_id=second))
        regraded.final_grade = "B"
        _db.session.commit()
    admin_laptop.sync()
    expected = ({"A": 1, "B": 1}, {department: (1, 0, 0, 1)})
    assert _figures(server) == expected
    assert _figures(admin_laptop.app) == expected
