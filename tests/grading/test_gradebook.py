"""Gradebook rules: who may mark what, mark validation, weights, finalising and its audit trail,
what students see, transcripts and GPA."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select

from portal.auth import access
from portal.catalogue.services import get_section
from portal.errors import Forbidden, ValidationError
from portal.grading import services
from portal.models import Assessment, AuditEntry, Mark, Registration, User
from tests import factories
from tests.conftest import csrf_token, post_form
from tests.forms import rendered_form

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def course(db):
    """A section with its instructor and lab staff, a lab (40%) and an exam (60%), 2 students."""
    instructor = factories.make_user(db, "instructor")
    lab_staff = factories.make_user(db, "lab_staff")
    section = factories.make_section(db, instructor_id=instructor.id, lab_staff_id=lab_staff.id)
    lab = factories.make_assessment(db, section, name="Lab 1", kind="lab", weight=40, max_points=20)
    exam = factories.make_assessment(
        db, section, name="Final", kind="exam", weight=60, max_points=50
    )
    students = [factories.make_user(db, "student") for _ in range(2)]
    for student in students:
        factories.enrol(db, student, section)
    return {
        "section": section,
        "instructor": instructor,
        "lab_staff": lab_staff,
        "admin": factories.make_user(db, "admin"),
        "lab": lab,
        "exam": exam,
        "students": students,
    }


# --- Who may mark what ----------------------------------------------------------------------------


def test_lab_staff_mark_only_lab_assessments_of_their_sections(db, course):
    section, lab_staff = course["section"], course["lab_staff"]
    assert access.gradable_kinds(lab_staff, section) == ("lab",)
    student = course["students"][0]
    services.set_mark(db, lab_staff, course["lab"], student.id, 12)
    with pytest.raises(Forbidden, match="lab assessments only"):
        services.set_mark(db, lab_staff, course["exam"], student.id, 40)
    other = factories.make_section(db)
    assert access.gradable_kinds(lab_staff, other) == ()


def test_instructors_mark_only_their_sections_and_admins_any(db, course):
    stranger = factories.make_user(db, "instructor")
    with pytest.raises(Forbidden):
        services.set_mark(db, stranger, course["exam"], course["students"][0].id, 40)
    assert access.gradable_kinds(course["admin"], course["section"]) == (
        "lab",
        "assignment",
        "exam",
    )
    assert access.gradable_kinds(course["students"][0], course["section"]) == ()


def test_only_enrolled_students_get_marks(db, course):
    outsider = factories.make_user(db, "student")
    with pytest.raises(ValidationError, match="not enrolled"):
        services.set_mark(db, course["instructor"], course["lab"], outsider.id, 5)


# --- Mark values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("21", "At most 20 points for Lab 1"),
        ("-1", "negative"),
        ("abc", "not a number"),
        ("nan", "not a number"),
        ("inf", "not a number"),
    ],
)
def test_bad_points_are_refused_with_a_message(db, course, raw, message):
    with pytest.raises(ValidationError, match=message):
        services.set_mark(
            db,
            course["instructor"],
            course["lab"],
            course["students"][0].id,
            services.parse_points(raw),
        )


def test_points_accept_a_decimal_comma_and_empty_clears(db, course):
    student = course["students"][0]
    points = services.parse_points(" 7,5 ")
    mark = services.set_mark(db, course["instructor"], course["lab"], student.id, points)
    assert mark is not None and mark.points == 7.5
    assert mark.entered_by_id == course["instructor"].id
    services.set_mark(db, course["instructor"], course["lab"], student.id, None)
    assert db.scalar(select(Mark.points).where(Mark.id == mark.id)) is None


@pytest.mark.parametrize("points", [Decimal("12.345"), Decimal("1.125"), Decimal("0.001")])
def test_more_decimal_places_than_kept_are_refused_not_rounded(db, course, points):
    student = course["students"][0]
    services.set_mark(db, course["instructor"], course["lab"], student.id, Decimal("5"))
    with pytest.raises(ValidationError) as refused:
        services.set_mark(db, course["instructor"], course["lab"], student.id, points)
    assert str(refused.value).startswith(
        f"Marks are kept to 2 decimal places: {points} has more. Enter "
    )
    assert db.scalar(select(Mark.points).where(Mark.student_id == student.id)) == 5


def test_the_refusal_suggests_the_two_nearest_values_kept(db, course):
    with pytest.raises(ValidationError, match=r"12\.345 has more\. Enter 12\.34 or 12\.35\.$"):
        services.check_points(Decimal("12.345"), course["lab"])
    # Trailing zeros are not precision: 7.500 is 7.5.
    assert services.check_points(Decimal("7.500"), course["lab"]) == Decimal("7.5")
    assert services.check_points(Decimal("12.35"), course["lab"]) == Decimal("12.35")


def test_json_numbers_keep_the_digits_they_were_written_with():
    assert services.points_from_number(1.125) == Decimal("1.125")
    assert services.points_from_number(12.35) == Decimal("12.35")
    assert services.points_from_number(40) == Decimal(40)
    assert services.points_from_number(None) is None
    with pytest.raises(ValidationError, match="not a number of points"):
        services.points_from_number(True)


def test_set_mark_takes_a_number_not_text(db, course):
    with pytest.raises(TypeError, match="Decimal"):
        services.set_mark(db, course["instructor"], course["lab"], course["students"][0].id, "7")


# --- Assessments and weights ----------------------------------------------------------------------


def test_weights_above_100_are_refused_with_what_is_left(db, course):
    data = services.AssessmentInput(name="Quiz", kind="assignment", weight=10, max_points=5)
    with pytest.raises(
        ValidationError, match=r"would bring the weights to 110%.*At most 0% is left"
    ):
        services.create_assessment(db, course["instructor"], course["section"], data)


def test_lab_staff_cannot_manage_assessments(db, course):
    data = services.AssessmentInput(name="Quiz", kind="lab", weight=0, max_points=5)
    with pytest.raises(Forbidden):
        services.create_assessment(db, course["lab_staff"], course["section"], data)


def test_maximum_cannot_drop_below_an_existing_mark(db, course):
    services.set_mark(db, course["instructor"], course["lab"], course["students"][0].id, 18)
    data = services.AssessmentInput(name="Lab 1", kind="lab", weight=40, max_points=15)
    with pytest.raises(ValidationError, match="already has 18 points"):
        services.update_assessment(db, course["instructor"], course["lab"], data)


# --- The gradebook --------------------------------------------------------------------------------


def test_gradebook_totals_and_provisional_letters(db, course):
    first, second = course["students"]
    services.set_mark(db, course["instructor"], course["lab"], first.id, 20)
    services.set_mark(db, course["instructor"], course["exam"], first.id, 45)
    services.set_mark(db, course["instructor"], course["lab"], second.id, 10)
    book = services.gradebook(db, course["section"])
    rows = {row.student.id: row for row in book.rows}
    assert rows[first.id].percentage == pytest.approx(40 + 54)
    assert rows[first.id].letter == "A"
    assert rows[second.id].percentage == pytest.approx(20)  # missing exam counts as 0
    assert rows[second.id].so_far == pytest.approx(50)  # only the lab is marked
    assert rows[second.id].letter == "F"  # 10 of 20 on the lab: failing on what is marked
    assert book.weights_problem is None and book.shows_totals


def test_early_in_term_the_provisional_grade_is_on_marked_work_not_an_f(db, course):
    first, second = course["students"]
    services.set_mark(db, course["instructor"], course["lab"], first.id, Decimal("13.5"))
    (result,) = services.student_results(db, first)
    assert result.percentage == pytest.approx(27)  # the unmarked exam (60%) counts 0
    assert result.so_far == pytest.approx(67.5)
    assert result.provisional_letter == "D+"  # 67.5% of the marked lab, not F for 27%
    assert result.marked_share == pytest.approx(40)
    rows = {row.student.id: row for row in services.gradebook(db, course["section"]).rows}
    assert rows[first.id].letter == "D+"
    assert rows[second.id].letter is None  # nothing marked: no letter at all
    (nothing_yet,) = services.student_results(db, second)
    assert nothing_yet.provisional_letter is None and nothing_yet.marked_share == 0


def test_lab_staff_gradebook_shows_lab_columns_without_totals(db, course):
    book = services.gradebook(db, course["section"], ("lab",))
    assert [a.name for a in book.assessments] == ["Lab 1"]
    assert not book.shows_totals


@contextmanager
def count_queries(db):
    engine = db.get_bind()
    statements: list[str] = []

    def on_execute(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def _section_with_students(db, count: int):
    from portal.models import Registration, User

    section = factories.make_section(db, capacity=400)
    assessments = [
        factories.make_assessment(db, section, kind=kind, weight=weight)
        for kind, weight in (("lab", 20), ("lab", 20), ("assignment", 20), ("exam", 40))
    ]
    template = factories.make_user(db, "student")
    for n in range(count):
        student = User(
            username=f"{section.number}-s{n}",
            full_name=f"Student {n:03d}",
            role="student",
            password_hash=template.password_hash,
        )
        db.add(student)
        db.add(Registration(student=student, section_id=section.id, status="enrolled"))
        for assessment in assessments[: 1 + n % 4]:
            db.add(Mark(assessment_id=assessment.id, student=student, points=7))
    section.enrolled_count = count
    db.commit()
    return section


def test_a_section_is_loaded_with_its_course_and_term_in_one_statement(db):
    section = factories.make_section(db)
    expected = (section.id, section.course.code, section.term.code)
    db.commit()
    db.expire_all()
    with count_queries(db) as statements:
        loaded = get_section(db, expected[0])
        assert (loaded.id, loaded.course.code, loaded.term.code) == expected
    assert len([s for s in statements if s.startswith("SELECT")]) == 1, statements


def test_gradebook_query_count_does_not_grow_with_the_section(db):
    small, large = _section_with_students(db, 5), _section_with_students(db, 300)
    counts = []
    for section in (small, large):
        db.commit()
        db.expire_all()
        with count_queries(db) as statements:
            book = services.gradebook(db, get_section(db, section.id))
            assert all(row.percentage is not None for row in book.rows)
        counts.append(len(statements))
    assert counts[0] == counts[1] <= 10, counts
    assert len(book.rows) == 300


# --- Finalising -----------------------------------------------------------------------------------


def test_finalising_is_refused_until_weights_add_up(db, course):
    course["exam"].weight = 50
    with pytest.raises(ValidationError, match=r"add up to 90%.*cannot be finalised"):
        services.finalise_section(db, course["instructor"], course["section"], now=NOW)


def test_lab_staff_and_other_instructors_cannot_finalise(db, course):
    for user in (course["lab_staff"], factories.make_user(db, "instructor")):
        with pytest.raises(Forbidden):
            services.finalise_section(db, user, course["section"], now=NOW)


def test_finalising_writes_grades_locks_marks_and_is_audited(db, course):
    first, second = course["students"]
    instructor = course["instructor"]
    services.set_mark(db, instructor, course["lab"], first.id, 20)
    services.set_mark(db, instructor, course["exam"], first.id, 40)  # 40 + 48 = 88 -> B+
    services.finalise_section(db, instructor, course["section"], now=NOW)
    grades = dict(
        db.execute(
            select(Registration.student_id, Registration.final_grade).where(
                Registration.section_id == course["section"].id
            )
        ).all()
    )
    assert grades == {first.id: "B+", second.id: "F"}  # nothing marked: 0 %
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "grades.finalise"))
    assert entry is not None and entry.actor_id == instructor.id
    assert entry.after == {"grades": {first.student_number: "B+", second.student_number: "F"}}

    with pytest.raises(services.GradesLocked, match="final"):
        services.set_mark(db, instructor, course["lab"], first.id, 10)
    with pytest.raises(services.GradesLocked):
        services.set_mark(db, course["lab_staff"], course["lab"], first.id, 10)
    with pytest.raises(services.GradesLocked, match="already finalised"):
        services.finalise_section(db, instructor, course["section"], now=NOW)
    data = services.AssessmentInput(name="Extra", kind="lab", weight=0, max_points=5)
    with pytest.raises(services.GradesLocked):
        services.create_assessment(db, instructor, course["section"], data)


def test_admin_change_after_finalising_needs_a_reason_and_records_old_and_new(db, course):
    first = course["students"][0]
    services.set_mark(db, course["instructor"], course["lab"], first.id, 20)
    services.set_mark(db, course["instructor"], course["exam"], first.id, 40)
    services.finalise_section(db, course["instructor"], course["section"], now=NOW)
    admin = course["admin"]
    with pytest.raises(ValidationError, match="reason"):
        services.set_mark(db, admin, course["exam"], first.id, 50)
    services.set_mark(db, admin, course["exam"], first.id, 50, reason="Re-marked question 4")
    registration = db.scalar(
        select(Registration).where(
            Registration.student_id == first.id, Registration.section_id == course["section"].id
        )
    )
    assert registration is not None and registration.final_grade == "A"
    entry = db.scalar(
        select(AuditEntry).where(AuditEntry.action == "grades.mark_changed_after_final")
    )
    assert entry is not None
    assert entry.before == {"points": 40.0, "final_grade": "B+"}
    assert entry.after == {"points": 50.0, "final_grade": "A"}
    assert entry.reason == "Re-marked question 4"
    assert entry.actor_id == admin.id
    assert first.full_name in entry.summary and str(first.id) not in entry.summary


def test_finalising_uses_the_configured_scale_and_keeps_it(db, course):
    first = course["students"][0]
    services.set_mark(db, course["instructor"], course["lab"], first.id, 16)
    services.set_mark(db, course["instructor"], course["exam"], first.id, 35)  # 32 + 42 = 74
    services.save_default_scale(db, course["admin"], [("A", 70), ("B", 60), ("C", 50), ("F", 0)])
    assert services.active_scale(db)[0] == ("A", 70.0)
    finalisation = services.finalise_section(db, course["instructor"], course["section"], now=NOW)
    assert finalisation.grade_scale[0] == ["A", 70.0]
    services.save_default_scale(db, course["admin"], [("A", 95), ("F", 0)])
    book = services.gradebook(db, course["section"])
    assert {row.student.id: row.final_grade for row in book.rows}[first.id] == "A"
    assert book.scale[0] == ("A", 70.0)  # the finalised scale, not today's
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "grades.scale_changed"))


def test_only_admins_change_the_scale(db, course):
    with pytest.raises(Forbidden):
        services.save_default_scale(db, course["instructor"], [("A", 90), ("F", 0)])


# --- Students -------------------------------------------------------------------------------------


def test_student_results_hold_only_their_own_marks(db, course):
    first, second = course["students"]
    services.set_mark(db, course["instructor"], course["lab"], first.id, 20)
    services.set_mark(db, course["instructor"], course["lab"], second.id, 5)
    (result,) = services.student_results(db, first)
    assert [(a.name, points) for a, points in result.assessments] == [
        ("Lab 1", 20.0),
        ("Final", None),
    ]
    assert result.so_far == pytest.approx(100)
    assert result.percentage == pytest.approx(40)


def test_transcript_gpa_per_term_and_cumulative(db):
    student = factories.make_user(db, "student")
    factories.make_completed(db, student, factories.make_course(db, credits=3), "A")
    factories.make_completed(db, student, factories.make_course(db, credits=1), "C")
    factories.make_completed(db, student, factories.make_course(db, credits=0), "F")  # no credit
    current = factories.make_section(db, course=factories.make_course(db, credits=4))
    factories.enrol(db, student, current)  # in progress
    transcript = services.transcript(db, student)
    assert transcript.cumulative_gpa == pytest.approx(3.5)
    assert transcript.credits_earned == 4
    lines = [line for term in transcript.terms for line in term.lines]
    assert len(lines) == 4
    assert [line.grade for line in lines if line.course.credits == 4] == [None]
    per_term = [term.gpa for term in transcript.terms]
    assert sorted(g for g in per_term if g is not None) == [2.0, 4.0]


def test_results_and_transcript_list_one_read_of_the_registrations_in_their_orders(db):
    """My grades shows the results newest term first and the transcript oldest term first,
    each by course code within a term, both from one read of the student's registrations."""
    from datetime import date

    student = factories.make_user(db, "student")
    older = factories.make_term(db, starts_on=date(2025, 1, 10))
    newer = factories.make_term(db, starts_on=date(2025, 9, 1))
    for term, codes in ((newer, ("ZZZ201", "AAA201")), (older, ("ZZZ101", "AAA101"))):
        for code in codes:
            course = factories.make_course(db, code=code)
            factories.enrol(db, student, factories.make_section(db, course=course, term=term))
    db.commit()
    db.expire_all()
    enrolled = services.enrolled_registrations(db, student)
    with count_queries(db) as statements:
        results = services.student_results(db, student, enrolled)
        book = services.transcript(db, student, enrolled)
    assert not [s for s in statements if "FROM registrations" in s], statements
    assert [r.section.course.code for r in results] == ["AAA201", "ZZZ201", "AAA101", "ZZZ101"]
    assert [[line.course.code for line in t.lines] for t in book.terms] == [
        ["AAA101", "ZZZ101"],
        ["AAA201", "ZZZ201"],
    ]
    # Without the read passed in, each reads it itself, in the same orders.
    assert [r.section.course.code for r in services.student_results(db, student)] == [
        r.section.course.code for r in results
    ]
    assert [t.term.id for t in services.transcript(db, student).terms] == [older.id, newer.id]


def test_transcript_leaves_out_dropped_courses(db):
    student = factories.make_user(db, "student")
    section = factories.make_section(db)
    registration = factories.enrol(db, student, section)
    registration.status = "dropped"
    assert services.transcript(db, student).terms == []


# --- Pages ----------------------------------------------------------------------------------------


def _login(app, client, user):
    response = post_form(
        client, "/login", {"username": user.username, "password": factories.PASSWORD}
    )
    assert response.status_code == 302


def _setup_page(app):
    """Plain copies of what the page tests need (ids and usernames), safe outside a session."""
    from types import SimpleNamespace

    from portal.extensions import db as _db

    with app.app_context():
        session = _db.session
        instructor = factories.make_user(session, "instructor")
        lab_staff = factories.make_user(session, "lab_staff")
        section = factories.make_section(
            session, instructor_id=instructor.id, lab_staff_id=lab_staff.id
        )
        lab = factories.make_assessment(
            session, section, name="Lab 1", kind="lab", weight=40, max_points=20
        )
        exam = factories.make_assessment(
            session, section, name="Final", kind="exam", weight=60, max_points=50
        )
        student = factories.make_user(session, "student", full_name="Ada Lovelace")
        factories.enrol(session, student, section)
        session.commit()
        plain = [
            SimpleNamespace(id=obj.id, username=getattr(obj, "username", None))
            for obj in (instructor, lab_staff, section, lab, exam, student)
        ]
    return plain


def test_grid_save_keeps_typed_values_and_shows_errors_by_the_cell(app, client):
    instructor, _lab_staff, section, lab, exam, student = _setup_page(app)
    _login(app, client, instructor)
    path = f"/sections/{section.id}/gradebook"
    grid = rendered_form(client.get(path), action=path)  # the grid's own inputs, by name
    grid.fill_fields({f"m.{student.id}.{lab.id}": "25", f"m.{student.id}.{exam.id}": "41"})
    response = grid.submit(client)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'value="25"' in page  # the refused value is still there
    assert "At most 20 points for Lab 1" in page
    assert 'aria-invalid="true"' in page
    assert 'value="41"' in page  # the valid one was saved
    from portal.extensions import db as _db

    with app.app_context():
        points = dict(_db.session.execute(select(Mark.assessment_id, Mark.points)).all())
    assert points == {exam.id: 41.0}


def test_cell_save_with_htmx_answers_the_cell_with_error_and_value(app, client):
    instructor, _lab_staff, section, lab, _exam, student = _setup_page(app)
    _login(app, client, instructor)
    path = f"/sections/{section.id}/gradebook"
    token = post_form  # noqa: F841 - keep the helper import used
    from tests.conftest import csrf_token

    headers = {"HX-Request": "true", "X-CSRFToken": csrf_token(client, path)}
    cell = f"/sections/{section.id}/gradebook/cell"
    bad = client.post(cell, data={f"m.{student.id}.{lab.id}": "99"}, headers=headers)
    assert bad.status_code == 200  # htmx swaps only 2xx
    text = bad.get_data(as_text=True)
    assert 'value="99"' in text and "At most 20 points" in text
    good = client.post(cell, data={f"m.{student.id}.{lab.id}": "15"}, headers=headers)
    text = good.get_data(as_text=True)
    assert 'value="15"' in text and "Saved" in text
    assert 'id="pct-' in text and "30.0%" in text  # 15/20 of 40 %


def test_a_cell_with_three_decimal_places_keeps_what_was_typed_and_says_the_rule(app, client):
    instructor, _lab_staff, section, lab, _exam, student = _setup_page(app)
    _login(app, client, instructor)
    path = f"/sections/{section.id}/gradebook"
    from tests.conftest import csrf_token

    headers = {"HX-Request": "true", "X-CSRFToken": csrf_token(client, path)}
    cell = f"/sections/{section.id}/gradebook/cell"
    answer = client.post(cell, data={f"m.{student.id}.{lab.id}": "12,345"}, headers=headers)
    text = answer.get_data(as_text=True)
    assert 'value="12,345"' in text
    assert "Marks are kept to 2 decimal places: 12.345 has more. Enter 12.34 or 12.35." in text
    from portal.extensions import db as _db

    with app.app_context():
        assert _db.session.scalar(select(Mark.points)) is None  # nothing stored, nothing rounded


def test_lab_staff_page_shows_lab_columns_only_and_not_other_sections(app, client):
    _instructor, lab_staff, section, _lab, _exam, _student = _setup_page(app)
    _login(app, client, lab_staff)
    page = client.get(f"/sections/{section.id}/gradebook").get_data(as_text=True)
    assert "Lab 1" in page and "Final" not in page
    from portal.extensions import db as _db

    with app.app_context():
        other = factories.make_section(_db.session)
        _db.session.commit()
        other_id = other.id
    assert client.get(f"/sections/{other_id}/gradebook").status_code == 403


def test_finalised_gradebook_is_read_only_for_the_instructor(app, client):
    instructor, _lab_staff, section, _lab, _exam, _student = _setup_page(app)
    _login(app, client, instructor)
    path = f"/sections/{section.id}/gradebook"
    finalise = rendered_form(client.get(path), action=f"/sections/{section.id}/finalise")
    response = finalise.submit(client)  # with the missing marks the page showed
    assert response.status_code == 302
    page = client.get(path).get_data(as_text=True)
    assert "are locked" in page and "hx-post" not in page
    # Locked marks are text, not inputs that look editable.
    assert 'class="gb-input' not in page and "gb-cell-locked" in page
    assert "each mark is saved when you leave its cell" not in page


def test_students_see_their_own_grades_and_transcript_only(app, client):
    instructor, _lab_staff, _section, lab, _exam, student = _setup_page(app)
    _login(app, client, student)
    page = client.get("/grades").get_data(as_text=True)
    assert "Lab 1" in page and "not marked" in page
    assert "Provisional grade" not in page  # nothing is marked yet: no letter at all
    from portal.extensions import db as _db

    with app.app_context():
        services.set_mark(
            _db.session,
            _db.session.get(User, instructor.id),
            _db.session.get(Assessment, lab.id),
            student.id,
            Decimal("13.5"),
        )
        _db.session.commit()
    page = client.get("/grades").get_data(as_text=True)
    assert "So far 67.5%" in page
    # As read: a letter grade is isolated in its own direction (<bdi>), inside the sentence.
    text = " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"</?bdi>", "", page)).split())
    assert "Provisional grade D+, on the 40% of the course marked so far" in text
    assert "Provisional grade F" not in text
    transcript = client.get("/transcript").get_data(as_text=True)
    assert "Ada Lovelace" in transcript and "In progress" in transcript
    assert client.get(f"/students/{student.id}/transcript").status_code == 403


def test_finalise_warns_of_open_assessments_and_missing_marks(app, client):
    from portal.extensions import db as _db
    from portal.models import Assessment

    instructor, _lab_staff, section, lab, _exam, _student = _setup_page(app)
    with app.app_context():
        assessment = _db.session.get(Assessment, lab.id)
        assessment.due_at = factories.now() + timedelta(days=3)
        _db.session.commit()
    _login(app, client, instructor)
    page = client.get(f"/sections/{section.id}/gradebook").get_data(as_text=True)
    assert "Still open for lab reports: Lab 1 (due" in page
    assert "Finalising closes their uploads." in page
    assert "2 mark(s) missing (Lab 1: 1, Final: 1); they count as 0." in page
    check = client.get(f"/sections/{section.id}/finalise/check").get_json()
    assert "Still open for lab reports: Lab 1" in check["question"]
    assert "2 mark(s) missing (Lab 1: 1, Final: 1)" in check["question"]


def test_the_finalise_confirmation_and_the_finalising_go_by_the_marks_of_that_moment(app, client):
    """The page is loaded with every mark in; a mark is cleared afterwards (another tab, a
    colleague): the confirmation says it is missing, and a confirmation that did not say so
    (the page's own, or one asked before the change) finalises nothing."""
    from portal.extensions import db as _db

    instructor, _lab_staff, section, lab, exam, student = _setup_page(app)
    with app.app_context():
        actor = _db.session.get(User, instructor.id)
        for assessment_id, points in ((lab.id, 15), (exam.id, 40)):
            assessment = _db.session.get(Assessment, assessment_id)
            services.set_mark(_db.session, actor, assessment, student.id, points)
        _db.session.commit()
    _login(app, client, instructor)
    path = f"/sections/{section.id}/gradebook"
    check_path = f"/sections/{section.id}/finalise/check"
    loaded = client.get(path)
    assert "mark(s) missing" not in loaded.get_data(as_text=True)
    finalise_form = rendered_form(loaded, action=f"/sections/{section.id}/finalise")
    assert finalise_form.values["missing_marks"] == [""]
    before = client.get(check_path).get_json()
    assert "missing" not in before["question"]

    cell = f"/sections/{section.id}/gradebook/cell"
    headers = {"HX-Request": "true", "X-CSRFToken": csrf_token(client, path)}
    client.post(cell, data={f"m.{student.id}.{exam.id}": ""}, headers=headers)  # cleared

    now = client.get(check_path).get_json()
    assert "1 mark(s) missing (Final: 1); they count as 0." in now["question"]
    assert now["missing_token"] != ""
    for stale in (finalise_form, rendered_form(loaded, action=finalise_form.action)):
        stale.fill(missing_marks=before["missing_token"])
        refused = stale.submit(client)
        assert refused.status_code == 302
        shown = client.get(path).get_data(as_text=True)
        assert (
            "Nothing was finalised: the marks changed since you confirmed. 1 mark(s) missing now "
            "(Final: 1); they count as 0. Check them, then finalise again."
        ) in shown
        assert "1 mark(s) missing (Final: 1)" in shown  # the warnings box, as of now
    with app.app_context():
        assert services.finalisation_of(_db.session, section.id) is None
    # Filled again: the confirmation no longer warns, and finalising goes through.
    client.post(cell, data={f"m.{student.id}.{exam.id}": "40"}, headers=headers)
    again = client.get(check_path).get_json()
    assert "missing" not in again["question"] and again["missing_token"] == ""
    done = rendered_form(client.get(path), action=finalise_form.action).submit(
        client, missing_marks=again["missing_token"]
    )
    assert done.status_code == 302
    with app.app_context():
        assert services.finalisation_of(_db.session, section.id) is not None


def test_finalising_with_missing_marks_confirmed_as_they_are_goes_through(app, client):
    from portal.extensions import db as _db

    instructor, _lab_staff, section, _lab, _exam, _student = _setup_page(app)
    _login(app, client, instructor)
    check = client.get(f"/sections/{section.id}/finalise/check").get_json()
    assert "2 mark(s) missing" in check["question"]
    path = f"/sections/{section.id}/gradebook"
    form = rendered_form(client.get(path), action=f"/sections/{section.id}/finalise")
    assert form.values["missing_marks"] == [check["missing_token"]]  # the page's own, no script
    assert form.submit(client).status_code == 302
    with app.app_context():
        assert services.finalisation_of(_db.session, section.id) is not None


def test_assessment_maximum_points_and_names_are_checked(app, client):
    instructor, _lab_staff, section, _lab, _exam, _student = _setup_page(app)
    _login(app, client, instructor)
    path = f"/sections/{section.id}/assessments"

    def add(name: str, max_points: str, weight: str = "0"):
        return post_form(
            client,
            path,
            {"name": name, "kind": "assignment", "weight": weight, "max_points": max_points},
            token_from=path,
        )

    rule = "The maximum points must be more than 0 and at most 10,000."
    for typed in ("0", "-5", "1e9"):
        page = add("Quiz", typed).get_data(as_text=True)
        assert page.count(rule) == 1, typed  # each rule's message once, not twice in two words
        assert "The maximum points must be more than 0." not in page
        assert "This field is required" not in page
    same = add("  lab 1 ", "10")
    assert "already has an assessment named &#39;lab 1&#39;." in same.get_data(as_text=True)
    assert add("Quiz", "10").status_code == 302  # weight 0 is allowed, and not "required"
    with app.app_context():
        from portal.extensions import db as _db
        from portal.models import Assessment

        names = sorted(
            _db.session.scalars(select(Assessment.name).where(Assessment.section_id == section.id))
        )
    assert names == ["Final", "Lab 1", "Quiz"]


def test_an_assessment_form_shows_every_problem_at_once_and_cuts_nothing(app, client):
    instructor, _lab_staff, section, _lab, _exam, _student = _setup_page(app)
    _login(app, client, instructor)
    path = f"/sections/{section.id}/assessments"
    page = client.get(path)
    name_input = page.get_data(as_text=True).split('id="name"', 1)[1].split(">", 1)[0]
    assert "maxlength" not in name_input  # the browser would cut a pasted name silently
    long_name = "Field report on the river catchment " * 139  # 5,004 characters
    typed = {"name": long_name, "kind": "assignment", "weight": "150", "max_points": "abc"}
    answer = rendered_form(page, action=path).submit(client, **typed)
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert (
        f"The name can be at most 200 characters; this one has {len(long_name.strip()):,}." in text
    )
    assert "The weight must be between 0 and 100 percent." in text
    assert "Not a valid float value." in text  # the maximum could not be read
    assert long_name.strip() in text  # what was typed is kept, whole
    # The numbers fixed, the rules that need the section come in the same round as the name.
    typed.update(weight="70", max_points="10")
    text = rendered_form(page, action=path).submit(client, **typed).get_data(as_text=True)
    assert "The name can be at most 200 characters" in text
    assert "would bring the weights to 170%" in text
    from portal.extensions import db as _db
    from portal.models import Assessment

    with app.app_context():
        assert _db.session.scalar(select(func.count()).select_from(Assessment)) == 2


def test_the_grade_scale_form_shows_every_problem_at_once_and_saves_nothing(app, client):
    from types import SimpleNamespace

    from portal.extensions import db as _db
    from portal.models import AuditEntry, GradeScale

    with app.app_context():
        admin = SimpleNamespace(username=factories.make_user(_db.session, "admin").username)
        _db.session.commit()
    _login(app, client, admin)
    page = client.get("/grade-scale")
    form = rendered_form(page, action="/grade-scale")
    # C above C+ (a rule between letters), D over 100 (the input's own check) and F not at
    # 0 (a rule of the whole scale): three problems, one answer.
    answer = form.submit(client, min_C="78", min_D="150", min_F="5")
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert "The minimum for C (78%) must be lower than for C+ (77%)." in text
    assert "Number must be between 0 and 100." in text
    assert "The lowest letter (F) must start at 0% so every mark gets a grade." in text
    assert "The minimum for D must be between 0 and 100." not in text  # said once, by D
    assert 'value="150"' in text and 'value="5"' in text  # kept as typed
    with app.app_context():
        assert _db.session.scalar(select(func.count()).select_from(GradeScale)) == 0
        assert (
            _db.session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .filter_by(action="grades.scale_changed")
            )
            == 0
        )


def test_a_scale_reports_every_rule_it_breaks(db, course):
    with pytest.raises(ValidationError) as refused:
        services.save_default_scale(db, course["admin"], [("A", 120), ("B", 90), ("C", 95)])
    assert refused.value.errors == {
        "A": "The minimum for A must be between 0 and 100.",
        "scale:below:C": "The minimum for C (95%) must be lower than for B (90%).",
        "scale:zero": "The lowest letter (C) must start at 0% so every mark gets a grade.",
    }


def test_assessment_rules_in_the_service(db, course):
    from portal.grading.services import AssessmentInput, create_assessment

    instructor, section = course["instructor"], course["section"]
    with pytest.raises(ValidationError, match="at most 10,000"):
        create_assessment(db, instructor, section, AssessmentInput("Big", "exam", 10, 10_001))
    with pytest.raises(ValidationError, match="more than 0"):
        create_assessment(db, instructor, section, AssessmentInput("Nil", "exam", 10, 0))


def test_due_times_are_entered_in_the_browsers_time_zone_and_stored_in_utc(app, client):
    from portal.extensions import db as _db
    from portal.models import Assessment

    instructor, _lab_staff, section, _lab, _exam, _student = _setup_page(app)
    _login(app, client, instructor)
    path = f"/sections/{section.id}/assessments"
    for name, zone, expected in (
        ("Berlin quiz", "Europe/Berlin", datetime(2026, 12, 1, 17, 0, tzinfo=UTC)),
        ("No script quiz", "", datetime(2026, 12, 1, 18, 0, tzinfo=UTC)),
        ("Unknown zone quiz", "Mars/Olympus", datetime(2026, 12, 1, 18, 0, tzinfo=UTC)),
    ):
        response = post_form(
            client,
            path,
            {
                "name": name,
                "kind": "assignment",
                "weight": "0",
                "max_points": "10",
                "due_at": "2026-12-01T18:00",
                "timezone": zone,
            },
            token_from=path,
        )
        assert response.status_code == 302
        with app.app_context():
            stored = _db.session.scalar(select(Assessment).where(Assessment.name == name))
            assert stored.due_at == expected, name
    page = client.get(path).get_data(as_text=True)
    assert 'data-local-timezone=""' in page


def test_a_desktop_database_held_by_another_writer_answers_busy_not_an_error(tmp_path):
    """On SQLite every change begins by taking the file's write lock: another program holding
    it longer than lock_wait_seconds gives "busy, try again" (503 with Retry-After)."""
    import sqlite3

    from portal.extensions import db as _db
    from tests.conftest import make_app

    path = tmp_path / "portal.db"
    app = make_app(tmp_path, f"sqlite:///{path}", LOCK_WAIT_SECONDS=1)
    instructor, _lab_staff, section, lab, _exam, student = _setup_page(app)
    client = app.test_client()
    _login(app, client, instructor)
    gradebook = f"/sections/{section.id}/gradebook"
    token = csrf_token(client, gradebook)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # a backup, a sync, another copy of the app...
        answer = client.post(gradebook, data={"csrf_token": token, f"m.{student.id}.{lab.id}": "9"})
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert "try again in a few seconds" in answer.get_data(as_text=True)
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()
