"""Attendance: who may take it, one record per student and session, and the rate rule."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from sqlalchemy import func, select

from portal.attendance import services
from portal.errors import Forbidden, ValidationError
from portal.models import AttendanceRecord
from tests import factories
from tests.conftest import csrf_token, post_form


@pytest.fixture
def lab(db):
    lab_staff = factories.make_user(db, "lab_staff")
    instructor = factories.make_user(db, "instructor")
    section = factories.make_section(db, lab_staff_id=lab_staff.id, instructor_id=instructor.id)
    students = [factories.make_user(db, "student") for _ in range(4)]
    for student in students:
        factories.enrol(db, student, section)
    sessions = [factories.make_lab_session(db, section, held_on=date(2026, 3, d)) for d in (2, 9)]
    return {
        "section": section,
        "lab_staff": lab_staff,
        "instructor": instructor,
        "students": students,
        "sessions": sessions,
    }


def test_rate_counts_present_and_late_and_leaves_out_excused():
    rate = services.Rate(present=2, late=1, absent=1, excused=3)
    assert rate.attended == 3 and rate.counted == 4 and rate.recorded == 7
    assert rate.rate == pytest.approx(75.0)
    assert services.Rate(excused=2).rate is None
    assert services.Rate().rate is None


def test_recording_twice_changes_the_one_record(db, lab):
    staff, session, student = lab["lab_staff"], lab["sessions"][0], lab["students"][0]
    services.record_attendance(db, staff, session, student.id, "absent")
    services.record_attendance(db, staff, session, student.id, "late")
    records = db.scalars(select(AttendanceRecord)).all()
    assert [(r.status, r.recorded_by_id) for r in records] == [("late", staff.id)]


def test_only_the_sections_staff_take_attendance(db, lab):
    session, student = lab["sessions"][0], lab["students"][0]
    services.record_attendance(db, lab["instructor"], session, student.id, "present")
    for outsider in (factories.make_user(db, "lab_staff"), factories.make_user(db, "instructor")):
        with pytest.raises(Forbidden):
            services.record_attendance(db, outsider, session, student.id, "present")
    services.record_attendance(db, factories.make_user(db, "admin"), session, student.id, "late")


def test_status_and_enrolment_are_checked(db, lab):
    staff, session = lab["lab_staff"], lab["sessions"][0]
    with pytest.raises(ValidationError, match="must be one of"):
        services.record_attendance(db, staff, session, lab["students"][0].id, "asleep")
    with pytest.raises(ValidationError, match="not enrolled"):
        services.record_attendance(
            db, staff, session, factories.make_user(db, "student").id, "present"
        )


def test_section_and_student_rates(db, lab):
    staff = lab["lab_staff"]
    first_session, second_session = lab["sessions"]
    a, b, c, d = lab["students"]
    for student, status in ((a, "present"), (b, "late"), (c, "absent"), (d, "excused")):
        services.record_attendance(db, staff, first_session, student.id, status)
    services.record_attendance(db, staff, second_session, a.id, "absent")
    summary = services.section_summary(db, lab["section"])
    rates = {student.id: rate for student, rate in summary.students}
    assert rates[a.id].rate == pytest.approx(50.0)
    assert rates[b.id].rate == pytest.approx(100.0)
    assert rates[c.id].rate == pytest.approx(0.0)
    assert rates[d.id].rate is None  # only excused
    assert summary.overall.rate == pytest.approx(2 / 4 * 100)  # a, b attended; a, c absent
    assert summary.per_session[first_session.id].recorded == 4
    assert services.student_rates(db, a)[lab["section"].id].rate == pytest.approx(50.0)


def test_mark_unrecorded_fills_in_only_the_missing(db, lab):
    staff, session = lab["lab_staff"], lab["sessions"][0]
    services.record_attendance(db, staff, session, lab["students"][0].id, "absent")
    assert services.mark_unrecorded(db, staff, session) == 3
    statuses = sorted(line.status or "" for line in services.sheet(db, session))
    assert statuses == ["absent", "present", "present", "present"]


def test_lab_session_times_in_order(db, lab):
    data = services.LabSessionInput(date(2026, 3, 3), time(16, 0), time(14, 0))
    with pytest.raises(ValidationError, match="end after"):
        services.create_lab_session(db, lab["lab_staff"], lab["section"], data)


def test_one_click_per_student_over_htmx_and_without(app, client):
    from portal.extensions import db as _db

    with app.app_context():
        staff = factories.make_user(_db.session, "lab_staff")
        section = factories.make_section(_db.session, lab_staff_id=staff.id)
        student = factories.make_user(_db.session, "student", full_name="Grace Hopper")
        factories.enrol(_db.session, student, section)
        session = factories.make_lab_session(_db.session, section)
        _db.session.commit()
        username, session_id, student_id = staff.username, session.id, student.id
    post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    page = client.get(f"/lab-sessions/{session_id}").get_data(as_text=True)
    assert "Grace Hopper" in page and "1 of 1 not recorded yet" in page
    url = f"/lab-sessions/{session_id}/students/{student_id}"
    headers = {
        "HX-Request": "true",
        "X-CSRFToken": csrf_token(client, f"/lab-sessions/{session_id}"),
    }
    answer = client.post(url, data={"status": "late"}, headers=headers)
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert 'value="late" aria-pressed="true"' in text
    assert 'hx-swap-oob="true"' in text and "1 late" in text
    plain = post_form(client, url, {"status": "present"}, token_from=f"/lab-sessions/{session_id}")
    assert plain.status_code == 302 and f"#student-{student_id}" in plain.headers["Location"]
    with app.app_context():
        assert _db.session.scalar(select(func.count()).select_from(AttendanceRecord)) == 1
        assert _db.session.scalar(select(AttendanceRecord.status)) == "present"


def test_lab_session_dates_stay_inside_the_term(db, lab):
    term = lab["section"].term
    outside = services.LabSessionInput(term.ends_on + timedelta(days=1), time(14, 0), time(16, 0))
    with pytest.raises(ValidationError, match="is outside"):
        services.create_lab_session(db, lab["lab_staff"], lab["section"], outside)
    before = services.LabSessionInput(term.starts_on - timedelta(days=1), time(14, 0), time(16, 0))
    with pytest.raises(ValidationError, match="is outside"):
        services.create_lab_session(db, lab["lab_staff"], lab["section"], before)


def test_lab_sessions_are_edited_and_deleted_from_the_attendance_page(app, client, login_as):
    staff = login_as("lab_staff")
    with app.app_context():
        from portal.extensions import db as _db

        section = factories.make_section(_db.session, lab_staff_id=staff.id)
        lab_session = factories.make_lab_session(_db.session, section)
        _db.session.commit()
        section_id, session_id = section.id, lab_session.id
        inside = (section.term.starts_on + timedelta(days=3)).isoformat()
        outside = (section.term.ends_on + timedelta(days=3)).isoformat()
    page = client.get(f"/sections/{section_id}/attendance").get_data(as_text=True)
    assert f'href="/lab-sessions/{session_id}/edit"' in page
    assert f'action="/lab-sessions/{session_id}/delete"' in page and "data-confirm=" in page
    edit = f"/lab-sessions/{session_id}/edit"
    refused = post_form(
        client, edit, {"held_on": outside, "starts_at": "14:00", "ends_at": "16:00"}, edit
    )
    assert refused.status_code == 422
    assert "is outside" in refused.get_data(as_text=True)
    saved = post_form(
        client,
        edit,
        {"held_on": inside, "starts_at": "09:00", "ends_at": "11:00", "room": "B-2"},
        edit,
    )
    assert saved.status_code == 302
    with app.app_context():
        from portal.extensions import db as _db
        from portal.models import LabSession

        changed = _db.session.get(LabSession, session_id)
        assert (changed.held_on.isoformat(), changed.starts_at, changed.room) == (
            inside,
            time(9, 0),
            "B-2",
        )
    deleted = post_form(client, f"/lab-sessions/{session_id}/delete", {}, edit)
    assert deleted.status_code == 302
    assert client.get(edit).status_code == 404
    page = client.get(f"/sections/{section_id}/attendance").get_data(as_text=True)
    assert f"/lab-sessions/{session_id}/edit" not in page
