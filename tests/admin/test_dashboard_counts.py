"""The counts the dashboard reads (kept by database triggers) equal the rows they count, after
every kind of write: through the ORM, in bulk, by raw SQL, and through the web pages."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

from sqlalchemy import delete, func, insert, select, update

from portal.admin import dashboard
from portal.extensions import db as _db
from portal.models import (
    ATTENDANCE_STATUSES,
    AttendanceRecord,
    Course,
    LabSession,
    LabSessionAttendanceCount,
    Registration,
    Section,
    SectionGradeCount,
)
from tests import factories
from tests.conftest import BOTH_DATABASES, post_form
from tests.forms import rendered_form

GRADES = ["A", "A-", "B+", "B", "C", "F", "W"]


# --- Figures computed directly from the rows, the way the dashboard did before it had counts ---


def direct_grades(db, term=None, course_code=""):
    query = select(Registration.final_grade, func.count()).where(
        Registration.status == "enrolled", Registration.final_grade.is_not(None)
    )
    if term is not None or course_code:
        sections = select(Section.id).join(Course, Section.course_id == Course.id)
        if term is not None:
            sections = sections.where(Section.term_id == term.id)
        if course_code:
            sections = sections.where(Course.code == course_code)
        query = query.where(Registration.section_id.in_(sections))
    return dict(db.execute(query.group_by(Registration.final_grade)).all())


def direct_graded_courses(db, term=None):
    query = (
        select(Course.code)
        .join(Section, Section.course_id == Course.id)
        .join(Registration, Registration.section_id == Section.id)
        .where(Registration.status == "enrolled", Registration.final_grade.is_not(None))
        .distinct()
    )
    if term is not None:
        query = query.where(Section.term_id == term.id)
    return sorted(db.scalars(query))


def direct_attendance(db, term=None):
    query = (
        select(Course.department, AttendanceRecord.status, func.count())
        .join(LabSession, AttendanceRecord.lab_session_id == LabSession.id)
        .join(Section, LabSession.section_id == Section.id)
        .join(Course, Section.course_id == Course.id)
        .where(LabSession.deleted_at.is_(None), Section.deleted_at.is_(None))
        .group_by(Course.department, AttendanceRecord.status)
    )
    if term is not None:
        query = query.where(Section.term_id == term.id)
    found: dict[str, Counter[str]] = {}
    for department, status, count in db.execute(query):
        found.setdefault(department, Counter())[status] = count
    return {
        department: (
            sum(statuses.values()),
            statuses["present"] + statuses["late"],
            statuses["absent"],
            statuses["excused"],
        )
        for department, statuses in found.items()
    }


def shown_grades(figures):
    return {g: n for g, n in zip(figures.grades.labels, figures.grades.series[0]["data"]) if n}


def shown_attendance(figures):
    return {
        r["department"]: (r["records"], r["attended"], r["absent"], r["excused"])
        for r in figures.attendance_counts
    }


def assert_dashboard_matches_rows(db, terms, course_codes):
    db.expire_all()
    for term in [None, *terms]:
        code = "all" if term is None else term.code
        figures = dashboard.build(db, term_code=code)
        assert shown_grades(figures) == direct_grades(db, term), code
        assert [c for c, _ in figures.courses] == direct_graded_courses(db, term), code
        assert shown_attendance(figures) == direct_attendance(db, term), code
        for course_code in course_codes:
            one = dashboard.build(db, term_code=code, course_code=course_code)
            assert shown_grades(one) == direct_grades(db, term, course_code), (code, course_code)


def assert_counts_match_rows(db):
    """Every count row equals the rows it counts (rows of 0 allowed, none missing)."""
    db.expire_all()
    graded = Counter(
        {
            (section_id, grade): n
            for section_id, grade, n in db.execute(
                select(Registration.section_id, Registration.final_grade, func.count())
                .where(Registration.status == "enrolled", Registration.final_grade.is_not(None))
                .group_by(Registration.section_id, Registration.final_grade)
            )
        }
    )
    kept = Counter(
        {
            (row.section_id, row.final_grade): row.registrations
            for row in db.scalars(select(SectionGradeCount))
            if row.registrations
        }
    )
    assert kept == graded
    recorded: Counter[tuple[object, str]] = Counter()
    for lab_session_id, status, n in db.execute(
        select(AttendanceRecord.lab_session_id, AttendanceRecord.status, func.count()).group_by(
            AttendanceRecord.lab_session_id, AttendanceRecord.status
        )
    ):
        recorded[(lab_session_id, status)] = n
    counted: Counter[tuple[object, str]] = Counter()
    for row in db.scalars(select(LabSessionAttendanceCount)):
        for status in ATTENDANCE_STATUSES:
            if getattr(row, status):
                counted[(row.lab_session_id, status)] = getattr(row, status)
    assert counted == recorded


def _campus(db, rng):
    """Two terms, three departments, a dozen sections with lab sessions and students."""
    old = factories.make_term(db, code="OLD1", state="past-drop")
    new = factories.make_term(db, code="NEW1")
    courses = [
        factories.make_course(db, department=department, code=f"{department[:3].upper()}{n}")
        for department in ("Physics", "Biology", "Chemistry")
        for n in (101, 102)
    ]
    sections = [
        factories.make_section(db, course=course, term=term, capacity=40)
        for course in courses
        for term in (old, new)
    ]
    students = [factories.make_user(db, "student") for _ in range(12)]
    labs = [factories.make_lab_session(db, section) for section in sections for _ in range(2)]
    db.flush()
    return (old, new), [c.code for c in courses], sections, students, labs


@BOTH_DATABASES
def test_dashboard_figures_equal_the_rows_after_random_writes(db):
    """Random inserts, grade and status changes, moves between sections and lab sessions and
    deletes, through the ORM, in bulk and by plain UPDATE/DELETE statements: the counts and
    every figure of the dashboard (each term, all terms, per course) equal a direct count."""
    rng = random.Random(11)
    terms, course_codes, sections, students, labs = _campus(db, rng)
    registrations: list[Registration] = []
    records: list[AttendanceRecord] = []
    taken: set[tuple[object, object]] = set()
    attended: set[tuple[object, object]] = set()
    for step in range(300):
        action = rng.random()
        if action < 0.3 or not registrations:
            student, section = rng.choice(students), rng.choice(sections)
            if (student.id, section.id) in taken:
                continue
            taken.add((student.id, section.id))
            registration = Registration(
                student_id=student.id,
                section_id=section.id,
                status=rng.choice(["enrolled", "enrolled", "waitlisted", "dropped"]),
                final_grade=rng.choice([None, *GRADES]),
            )
            db.add(registration)
            registrations.append(registration)
        elif action < 0.45:
            registration = rng.choice(registrations)
            registration.final_grade = rng.choice([None, *GRADES])
            if rng.random() < 0.3:
                registration.status = rng.choice(["enrolled", "waitlisted", "dropped"])
        elif action < 0.5:
            registration = rng.choice(registrations)
            target = rng.choice(sections)
            if (registration.student_id, target.id) not in taken:
                taken.discard((registration.student_id, registration.section_id))
                taken.add((registration.student_id, target.id))
                registration.section_id = target.id
        elif action < 0.55:
            registration = registrations.pop(rng.randrange(len(registrations)))
            taken.discard((registration.student_id, registration.section_id))
            db.delete(registration)
        elif action < 0.8 or not records:
            student, lab = rng.choice(students), rng.choice(labs)
            if (student.id, lab.id) in attended:
                continue
            attended.add((student.id, lab.id))
            record = AttendanceRecord(
                lab_session_id=lab.id, student_id=student.id, status=rng.choice(ATTENDANCE_STATUSES)
            )
            db.add(record)
            records.append(record)
        elif action < 0.9:
            rng.choice(records).status = rng.choice(ATTENDANCE_STATUSES)
        elif action < 0.95:
            record = records.pop(rng.randrange(len(records)))
            attended.discard((record.student_id, record.lab_session_id))
            db.delete(record)
        else:
            rng.choice(labs).deleted_at = factories.now() if rng.random() < 0.5 else None
        db.flush()
        if step % 60 == 59:
            assert_counts_match_rows(db)
            assert_dashboard_matches_rows(db, terms, course_codes)

    # Statements that bypass the ORM's unit of work: a bulk insert, a bulk update, a delete.
    newcomer = factories.make_user(db, "student")
    db.execute(
        insert(Registration),
        [
            {"student_id": newcomer.id, "section_id": s.id, "status": "enrolled", "final_grade": g}
            for s, g in zip(sections, GRADES * 2, strict=False)
        ],
    )
    db.execute(update(Registration).where(Registration.final_grade == "B").values(final_grade="A"))
    db.execute(update(AttendanceRecord).values(status="late"))
    db.execute(delete(Registration).where(Registration.final_grade == "F"))
    db.execute(delete(AttendanceRecord).where(AttendanceRecord.lab_session_id == labs[0].id))
    assert_counts_match_rows(db)
    assert_dashboard_matches_rows(db, terms, course_codes)


def test_attendance_counts_have_one_column_per_status():
    """A new attendance status needs a column of its own (and a migration with new triggers)."""
    columns = [c.name for c in LabSessionAttendanceCount.__table__.columns]
    assert columns == ["lab_session_id", *ATTENDANCE_STATUSES]


# --- Through the web pages ----------------------------------------------------------------------

CHART = re.compile(r"""<canvas id="(chart-[a-z]+)" data-chart='([^']*)'""")


def _charts(client, path):
    page = client.get(path)
    assert page.status_code == 200
    return {
        name: json.loads(config.replace("&#34;", '"').replace("&#39;", "'"))
        for name, config in CHART.findall(page.get_data(as_text=True))
    }


def _logged_in(app, username):
    client = app.test_client()
    answer = post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    assert answer.status_code == 302
    return client


def test_the_dashboard_page_shows_attendance_and_final_grades_as_soon_as_they_are_saved(app):
    with app.app_context():
        db = _db.session
        admin = factories.make_user(db, "admin")
        instructor = factories.make_user(db, "instructor")
        staff = factories.make_user(db, "lab_staff")
        course = factories.make_course(db, department="Geology", code="GEO200")
        section = factories.make_section(
            db, course=course, capacity=5, instructor_id=instructor.id, lab_staff_id=staff.id
        )
        students = [factories.make_user(db, "student") for _ in range(3)]
        for student in students:
            factories.enrol(db, student, section)
        exam = factories.make_assessment(db, section, kind="exam", weight=100, max_points=100)
        for student, points in zip(students, [95, 85, 40], strict=True):
            factories.make_mark(db, exam, student, points)
        lab = factories.make_lab_session(db, section)
        db.commit()
        names = admin.username, instructor.username, staff.username
        section_id, lab_id = section.id, lab.id
        student_ids = [s.id for s in students]
    admin_name, instructor_name, staff_name = names

    admin_client, staff_client = _logged_in(app, admin_name), _logged_in(app, staff_name)
    before = _charts(admin_client, "/admin/?term=all")
    assert "chart-attendance" not in before and "chart-grades" not in before

    for student_id, status in zip(student_ids, ["present", "absent", "late"], strict=True):
        answer = post_form(
            staff_client,
            f"/lab-sessions/{lab_id}/students/{student_id}",
            {"status": status},
            token_from=f"/lab-sessions/{lab_id}",
        )
        assert answer.status_code == 302
    attendance = _charts(admin_client, "/admin/?term=all")["chart-attendance"]
    assert (attendance["labels"], attendance["series"][0]["data"]) == (["Geology"], [66.7])

    # One student's absence turns out to be excused; the instructor finalises the grades.
    post_form(
        staff_client,
        f"/lab-sessions/{lab_id}/students/{student_ids[1]}",
        {"status": "excused"},
        token_from=f"/lab-sessions/{lab_id}",
    )
    gradebook = f"/sections/{section_id}/gradebook"
    instructor_client = _logged_in(app, instructor_name)
    # The page's own form: it carries the missing marks the instructor was shown.
    finalise = rendered_form(
        instructor_client.get(gradebook), action=f"/sections/{section_id}/finalise"
    )
    answer = finalise.submit(instructor_client)
    assert answer.status_code == 302
    charts = _charts(admin_client, "/admin/?term=all")
    assert charts["chart-attendance"]["series"][0]["data"] == [100.0]
    grades = dict(
        zip(charts["chart-grades"]["labels"], charts["chart-grades"]["series"][0]["data"])
    )
    with app.app_context():
        assert {g: n for g, n in grades.items() if n} == direct_grades(_db.session)
        assert sum(grades.values()) == 3
