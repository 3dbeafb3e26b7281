"""Dashboard figures are right, and their number of queries does not grow with the data."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event

from portal.admin import dashboard
from portal.models import AttendanceRecord, Registration
from tests import factories
from tests.conftest import BOTH_DATABASES


def _enrol(db, section, *, grade=None, status="enrolled"):
    student = factories.make_user(db, "student")
    db.add(
        Registration(
            student_id=student.id,
            section_id=section.id,
            status=status,
            final_grade=grade,
            enrolled_at=factories.now(),
        )
    )
    if status == "enrolled":
        section.enrolled_count += 1
    db.flush()
    return student


def _world(db, *, scale=1):
    """Two terms; Physics and Biology sections with known fill, grades and attendance."""
    old = factories.make_term(db, code=f"OLD{scale}", state="past-drop")
    old.starts_on = old.starts_on - timedelta(days=200)
    new = factories.make_term(db, code=f"NEW{scale}")
    physics = factories.make_course(db, department="Physics", code=f"PHY9{scale}")
    biology = factories.make_course(db, department="Biology", code=f"BIO9{scale}")
    full = factories.make_section(db, course=physics, term=new, capacity=2, waitlist_capacity=3)
    empty = factories.make_section(db, course=biology, term=new, capacity=10)
    third = factories.make_section(db, course=biology, term=new, capacity=10)
    past = factories.make_section(db, course=physics, term=old, capacity=50)
    students = [_enrol(db, full), _enrol(db, full)]
    full.waitlist_count = 2
    for _ in range(3):
        _enrol(db, third)  # 30% full
    for grade in ["A", "A", "B", "F"] * scale:
        _enrol(db, past, grade=grade)
    _enrol(db, past, status="dropped")
    lab = factories.make_lab_session(db, full)
    for student, status in zip(students, ["present", "absent"], strict=True):
        db.add(AttendanceRecord(lab_session_id=lab.id, student_id=student.id, status=status))
    db.flush()
    return {"old": old, "new": new, "full": full, "empty": empty, "third": third, "past": past}


@BOTH_DATABASES
def test_dashboard_figures(db):
    w = _world(db)
    d = dashboard.build(db, term_code=w["new"].code, under_percent=50)
    assert d.term.id == w["new"].id
    enrolment = dict(zip(d.enrolment.labels, zip(*[s["data"] for s in d.enrolment.series])))
    series_terms = [s["label"] for s in d.enrolment.series]
    assert series_terms == [w["old"].name, w["new"].name]  # oldest first
    assert enrolment == {"Biology": (0, 3), "Physics": (4, 2)}

    fill = dict(zip(d.fill.labels, d.fill.series[0]["data"]))
    assert fill == {"Empty": 1, "1–24%": 0, "25–49%": 1, "50–74%": 0, "75–99%": 0, "Full": 1}

    assert [r.label for r in d.full_sections.rows] == [w["full"].label]
    assert d.full_sections.rows[0].waitlisted == 2
    assert [r.label for r in d.under_filled.rows] == [w["empty"].label, w["third"].label]
    assert d.under_filled.total == 2

    assert d.attendance_counts == [
        {
            "department": "Physics",
            "records": 2,
            "attended": 1,
            "absent": 1,
            "excused": 0,
            "rate": 50.0,
        }
    ]
    assert d.grades.empty  # no final grades in the new term yet

    past = dashboard.build(db, term_code=w["old"].code, course_code="phy91")
    grades = dict(zip(past.grades.labels, past.grades.series[0]["data"]))
    assert grades["A"] == 2 and grades["B"] == 1 and grades["F"] == 1 and grades["C"] == 0
    assert past.grades.series[0]["label"] == "PHY91"
    assert past.courses == [("PHY91", w["full"].course.title)]

    everything = dashboard.build(db, term_code="all")
    assert everything.term is None
    assert sum(everything.fill.series[0]["data"]) == 4


def _attend(db, section, statuses, *, deleted=False):
    lab = factories.make_lab_session(db, section)
    if deleted:
        lab.deleted_at = factories.now()
    for status in statuses:
        student = factories.make_user(db, "student")
        db.add(AttendanceRecord(lab_session_id=lab.id, student_id=student.id, status=status))
    db.flush()


def _attendance(d):
    return {r["department"]: (r["records"], r["attended"], r["absent"], r["excused"], r["rate"])
            for r in d.attendance_counts}  # fmt: skip


def _grades(d):
    return {label: n for label, n in zip(d.grades.labels, d.grades.series[0]["data"]) if n}


@BOTH_DATABASES
def test_all_terms_figures_are_the_sum_of_each_terms(db):
    """Attendance and final grades over all terms add up the terms' figures, the course list is
    the union of the terms' lists; a deleted lab session and a grade held by a registration
    that is not enrolled count nowhere."""
    w = _world(db)
    physics = w["full"].course.code
    biology = w["third"].course.code
    _attend(db, w["past"], ["present", "late", "late", "excused", "absent"])
    _attend(db, w["past"], ["present", "present"], deleted=True)
    _attend(db, w["third"], ["present", "excused"])
    for grade in ["A", "C"]:
        _enrol(db, w["third"], grade=grade)
    _enrol(db, w["third"], grade="B", status="waitlisted")
    db.expire_all()

    old = dashboard.build(db, term_code=w["old"].code)
    new = dashboard.build(db, term_code=w["new"].code)
    everything = dashboard.build(db, term_code="all")

    assert _attendance(old) == {"Physics": (5, 3, 1, 1, 75.0)}
    assert _attendance(new) == {"Biology": (2, 1, 0, 1, 100.0), "Physics": (2, 1, 1, 0, 50.0)}
    assert _attendance(everything) == {
        "Biology": (2, 1, 0, 1, 100.0),
        "Physics": (7, 4, 2, 1, 66.7),
    }
    assert everything.attendance.labels == ["Biology", "Physics"]
    assert everything.attendance.series[0]["data"] == [100.0, 66.7]

    assert _grades(old) == {"A": 2, "B": 1, "F": 1}
    assert _grades(new) == {"A": 1, "C": 1}
    assert _grades(everything) == {"A": 3, "B": 1, "C": 1, "F": 1}
    assert [code for code, _ in old.courses] == [physics]
    assert [code for code, _ in new.courses] == [biology]
    assert [code for code, _ in everything.courses] == sorted([biology, physics])

    one_course = dashboard.build(db, term_code="all", course_code=biology.lower())
    assert _grades(one_course) == {"A": 1, "C": 1}
    assert one_course.grades.series[0]["label"] == biology
    assert one_course.courses == everything.courses  # the list does not narrow to the course
    assert _grades(dashboard.build(db, term_code=w["old"].code, course_code=biology)) == {}


@contextmanager
def count_queries(db):
    engine = db.get_bind()
    statements = []

    def before(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def test_query_count_does_not_grow_with_data(db):
    _world(db, scale=1)
    db.expire_all()
    with count_queries(db) as small:
        dashboard.build(db, term_code="all")
    for scale in range(2, 6):
        _world(db, scale=scale)
    db.expire_all()
    with count_queries(db) as large:
        dashboard.build(db, term_code="all")
    assert len(small) == len(large) <= 10


def test_dashboard_page_renders_charts_with_table_alternatives(app, client, data, login_as):
    with data() as db:
        w = _world(db)
        term_code = w["new"].code
    login_as("admin")
    page = client.get(f"/admin/?term={term_code}").get_data(as_text=True)
    assert page.count("data-chart='") == 3  # enrolment, fill, attendance (no grades yet)
    assert page.count("Show the figures as a table") == 3
    assert 'role="img"' in page
    assert "vendor/chartjs/chart.umd.min.js" in page and "js/dashboard.js" in page
    assert "<script>" not in page  # the CSP forbids inline script
    assert "No data for this selection yet." in page  # the grade chart


def test_dashboard_opens_on_the_current_term_as_home_does(app, client, data, login_as):
    """A future term with one early registration is the newest term; the dashboard still opens
    on the term under way, the one Home and the catalogue open on."""
    with data() as db:
        today = factories.now().date()
        current = factories.make_term(
            db,
            code="NOW1",
            name="Autumn Now",
            starts_on=today - timedelta(days=30),
            ends_on=today + timedelta(days=60),
        )
        future = factories.make_term(
            db,
            code="NEXT1",
            name="Spring Next",
            starts_on=today + timedelta(days=90),
            ends_on=today + timedelta(days=200),
        )
        for _ in range(3):
            _enrol(db, factories.make_section(db, term=current, capacity=10))
        _enrol(db, factories.make_section(db, term=future, capacity=10))
    login_as("admin")
    home = client.get("/").get_data(as_text=True)
    assert "Autumn Now" in home and "Spring Next" not in home
    page = client.get("/admin/").get_data(as_text=True)
    assert 'Dashboard <span class="text-body-secondary fs-5">· Autumn Now</span>' in page
    assert '<option value="NOW1" selected>' in page
    assert '<option value="NEXT1" selected>' not in page
    chosen = client.get("/admin/?term=NEXT1").get_data(as_text=True)
    assert '<option value="NEXT1" selected>' in chosen  # a chosen term is still shown
