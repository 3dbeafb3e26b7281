"""CSV exports (rosters, import reports), safe to open in a spreadsheet.

A cell that starts with = + - @ (or a tab or carriage return) would be run as a formula by
Excel or LibreOffice; such cells are prefixed with an apostrophe, which spreadsheets show as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from portal.auth import access
from portal.errors import Forbidden
from portal.models import Registration, Section, User

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
ROSTER_COLUMNS = (
    "student_number",
    "username",
    "full_name",
    "email",
    "status",
    "waitlist_position",
    "registered_at",
    "final_grade",
)


def safe_cell(value: Any) -> str:
    """The text of a cell, defused if a spreadsheet would read it as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)  # numbers (even negative ones) are data, not formulas
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """UTF-8 text with a byte-order mark, so Excel opens accented names correctly."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return buffer.getvalue()


def ensure_may_export(section: Section, viewer: User) -> None:
    """Admins export any section; instructors and lab staff only the sections they teach."""
    if access.may_take_attendance(viewer, section):
        return
    raise Forbidden(_("You can export the rosters of your own sections only."))


def roster_rows(db: Session, section: Section) -> list[tuple[Any, ...]]:
    """Enrolled students first (by name), then the waitlist in order; dropped ones are left out."""
    status_order = case((Registration.status == "enrolled", 0), else_=1)
    return [
        tuple(row)
        for row in db.execute(
            select(
                User.student_number,
                User.username,
                User.full_name,
                User.email,
                Registration.status,
                Registration.waitlist_position,
                Registration.registered_at,
                Registration.final_grade,
            )
            .join(User, Registration.student_id == User.id)
            .where(
                Registration.section_id == section.id,
                Registration.status.in_(("enrolled", "waitlisted")),
            )
            .order_by(status_order, Registration.waitlist_position, User.full_name)
        )
    ]


def roster_csv(db: Session, section: Section, viewer: User) -> str:
    ensure_may_export(section, viewer)
    rows = [
        (*row[:6], row[6].strftime("%Y-%m-%d %H:%M UTC") if row[6] else "", row[7])
        for row in roster_rows(db, section)
    ]
    return to_csv(ROSTER_COLUMNS, rows)


def roster_filename(section: Section) -> str:
    return f"roster-{section.term.code}-{section.course.code}-{section.number}.csv"


def _points(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:g}"


def gradebook_csv(db: Session, section: Section, viewer: User) -> str:
    """The gradebook as the viewer may see it (lab staff: the lab columns only)."""
    from portal.grading import services as grading

    kinds = grading.ensure_can_grade(viewer, section)
    book = grading.gradebook(db, section, kinds)
    header = ["student_number", "username", "full_name"] + [
        f"{a.name} ({a.kind}, {a.weight:g}%, max {a.max_points:g})" for a in book.assessments
    ]
    if book.shows_totals:
        # grade_so_far: the letter of the marked work only (the gradebook's "Grade so far"),
        # never a final grade, which is final_grade's (empty until grades are finalised).
        header += ["course_percentage", "percentage_so_far", "grade_so_far", "final_grade"]
    rows = []
    for row in book.rows:
        cells: list[Any] = [row.student.student_number, row.student.username, row.student.full_name]
        cells += [_points(row.points.get(a.id)) for a in book.assessments]
        if book.shows_totals:
            percentage = "" if row.percentage is None else f"{row.percentage:.1f}"
            so_far = "" if row.so_far is None else f"{row.so_far:.1f}"
            cells += [percentage, so_far, row.letter or "", row.final_grade or ""]
        rows.append(cells)
    return to_csv(header, rows)


def attendance_csv(db: Session, section: Section, viewer: User) -> str:
    """One row per enrolled student: the status of each lab session, the counts and the rate."""
    from portal.attendance.services import ensure_can_take, section_summary
    from portal.models import AttendanceRecord, LabSession

    ensure_can_take(viewer, section)
    summary = section_summary(db, section)
    statuses = {
        (student_id, session_id): status
        for student_id, session_id, status in db.execute(
            select(
                AttendanceRecord.student_id,
                AttendanceRecord.lab_session_id,
                AttendanceRecord.status,
            )
            .join(LabSession, AttendanceRecord.lab_session_id == LabSession.id)
            .where(LabSession.section_id == section.id, LabSession.deleted_at.is_(None))
        )
    }
    header = ["student_number", "username", "full_name"]
    header += [s.label for s in summary.sessions]
    header += ["present", "late", "absent", "excused", "attendance_rate"]
    rows = []
    for student, rate in summary.students:
        cells: list[Any] = [student.student_number, student.username, student.full_name]
        cells += [statuses.get((student.id, s.id), "") for s in summary.sessions]
        cells += [rate.present, rate.late, rate.absent, rate.excused]
        cells.append("" if rate.rate is None else f"{rate.rate:.1f}")
        rows.append(cells)
    return to_csv(header, rows)


def section_filename(kind: str, section: Section) -> str:
    return f"{kind}-{section.term.code}-{section.course.code}-{section.number}.csv"
