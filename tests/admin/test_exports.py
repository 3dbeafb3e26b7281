"""Roster export: who may export which section, and cells that would be spreadsheet formulas."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from portal.admin.exports import safe_cell, to_csv
from portal.registration.services import register
from tests import factories


def test_cells_that_spreadsheets_would_run_are_defused():
    assert safe_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert [safe_cell(v) for v in ("+1", "-2+3", "@SUM(A1)", "\tx", "\rx")] == [
        "'+1",
        "'-2+3",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
    ]
    assert [safe_cell(v) for v in ("Anne-Marie", "a=b", -5, 3.5, None, True)] == [
        "Anne-Marie",
        "a=b",
        "-5",
        "3.5",
        "",
        "yes",
    ]
    text = to_csv(["=name"], [["=1+1"]])
    assert text == "\ufeff'=name\r\n'=1+1\r\n"


def _roster_world(data):
    with data() as db:
        instructor = factories.make_user(db, "instructor")
        other = factories.make_user(db, "instructor")
        section = factories.make_section(db, instructor_id=instructor.id, capacity=1)
        evil = factories.make_user(db, "student", full_name="=cmd|' /C calc'!A0")
        second = factories.make_user(db, "student", full_name="Ada Waitlisted")
        register(db, evil, section, now=factories.now())
        register(db, second, section, now=factories.now())
        return section.id, instructor.username, other.username, evil.username


def test_roster_csv_lists_enrolled_then_waitlisted_with_formulas_defused(app, client, data):
    from tests.auth.test_rbac_matrix import _login

    section_id, instructor, _, evil = _roster_world(data)
    client = _login(app, instructor)
    response = client.get(f"/admin/sections/{section_id}/roster.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="roster-')
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:5] == ["student_number", "username", "full_name", "email", "status"]
    assert [(r[1], r[2], r[4], r[5]) for r in rows[1:]] == [
        (evil, "'=cmd|' /C calc'!A0", "enrolled", ""),
        (rows[2][1], "Ada Waitlisted", "waitlisted", "1"),
    ]


def test_staff_export_only_their_own_sections(app, data):
    from tests.auth.test_rbac_matrix import _login

    section_id, _, other, _ = _roster_world(data)
    response = _login(app, other).get(f"/admin/sections/{section_id}/roster.csv")
    assert response.status_code == 403
    assert "your own sections" in response.get_data(as_text=True)


def test_gradebook_and_attendance_exports(app, data):
    from portal.models import AttendanceRecord, Mark
    from tests.auth.test_rbac_matrix import _login

    with data() as db:
        instructor = factories.make_user(db, "instructor")
        lab = factories.make_user(db, "lab_staff")
        section = factories.make_section(db, instructor_id=instructor.id, lab_staff_id=lab.id)
        student = factories.make_user(db, "student", full_name="@risky name")
        register(db, student, section, now=factories.now())
        lab_work = factories.make_assessment(db, section, name="Lab 1", kind="lab", weight=40)
        exam = factories.make_assessment(db, section, name="Final", kind="exam", weight=60)
        db.add(Mark(assessment_id=lab_work.id, student_id=student.id, points=8))
        db.add(Mark(assessment_id=exam.id, student_id=student.id, points=5))
        first = factories.make_lab_session(db, section)
        db.add(AttendanceRecord(lab_session_id=first.id, student_id=student.id, status="late"))
        ids = section.id, instructor.username, lab.username, student.username

    section_id, instructor_name, lab_name, student_name = ids

    def rows(username, path):
        response = _login(app, username).get(f"/admin/sections/{section_id}/{path}")
        assert response.status_code == 200, response.get_data(as_text=True)
        text = response.get_data(as_text=True).lstrip("\ufeff")
        return list(csv.reader(io.StringIO(text)))

    book = rows(instructor_name, "gradebook.csv")
    assert book[0] == [
        "student_number",
        "username",
        "full_name",
        "Lab 1 (lab, 40%, max 10)",
        "Final (exam, 60%, max 10)",
        "course_percentage",
        "percentage_so_far",
        "grade_so_far",
        "final_grade",
    ]
    assert book[1][1:9] == [student_name, "'@risky name", "8", "5", "62.0", "62.0", "D", ""]

    lab_book = rows(lab_name, "gradebook.csv")  # lab staff: lab columns, no totals
    assert lab_book[0] == ["student_number", "username", "full_name", "Lab 1 (lab, 40%, max 10)"]

    sheet = rows(lab_name, "attendance.csv")
    assert sheet[0][-5:] == ["present", "late", "absent", "excused", "attendance_rate"]
    assert sheet[1][3:] == ["late", "0", "1", "0", "0", "100.0"]


def test_the_gradebook_export_says_which_grade_is_so_far_and_which_is_final(app, data):
    """A missing mark counts as 0 in course_percentage; grade_so_far is the letter of the
    marked work only, as the gradebook shows it, and final_grade stays empty until grades are
    finalised, then holds the letter written for the student."""
    from portal.grading import services as grading
    from portal.models import Mark
    from tests.auth.test_rbac_matrix import _login

    with data() as db:
        instructor = factories.make_user(db, "instructor")
        section = factories.make_section(db, instructor_id=instructor.id)
        student = factories.make_user(db, "student")
        register(db, student, section, now=factories.now())
        lab_work = factories.make_assessment(db, section, name="Lab 1", kind="lab", weight=40)
        factories.make_assessment(db, section, name="Final", kind="exam", weight=60)
        db.add(Mark(assessment_id=lab_work.id, student_id=student.id, points=8))
        section_id, username = section.id, instructor.username

    def export() -> dict[str, str]:
        response = _login(app, username).get(f"/admin/sections/{section_id}/gradebook.csv")
        assert response.status_code == 200
        header, row = csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff")))
        return dict(zip(header, row, strict=True))

    before = export()
    assert "letter" not in before
    assert (before["course_percentage"], before["percentage_so_far"]) == ("32.0", "80.0")
    assert (before["grade_so_far"], before["final_grade"]) == ("B-", "")

    with data() as db:
        from portal.models import Section, User

        actor = db.scalar(select(User).where(User.username == username))
        grading.finalise_section(db, actor, db.get(Section, section_id), now=factories.now())
    after = export()
    assert (after["grade_so_far"], after["final_grade"]) == ("B-", "F")
