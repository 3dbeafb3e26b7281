"""Marks typed while the instructor finalises: no mark can slip in after the grades are written.

Real threads on a real database (SQLite here, PostgreSQL too when reachable): both set_mark and
finalise_section take the section's lock before they read whether the grades are final.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from portal.extensions import db as _db
from portal.grading import services
from portal.models import Mark, Registration, Section, User
from tests import factories
from tests.conftest import make_app

STUDENTS = 12


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_marks_racing_finalisation_never_slip_in_after_it(tmp_path, request, backend):
    url = (
        request.getfixturevalue("postgres_url")
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'race.db'}"
    )
    app = make_app(tmp_path, url)
    with app.app_context():
        session = _db.session
        instructor = factories.make_user(session, "instructor")
        section = factories.make_section(session, instructor_id=instructor.id)
        assessment = factories.make_assessment(
            session, section, kind="exam", weight=100, max_points=100
        )
        students = [factories.make_user(session, "student") for _ in range(STUDENTS)]
        for student in students:
            factories.enrol(session, student, section)
        session.commit()
        ids = (instructor.id, section.id, assessment.id, [s.id for s in students])
        session.remove()
    instructor_id, section_id, assessment_id, student_ids = ids
    barrier = threading.Barrier(STUDENTS + 1)
    outcomes: list[str] = []

    def enter_mark(student_id):
        with app.app_context():
            session = _db.session
            actor = session.get(User, instructor_id)
            target = services.get_assessment(session, assessment_id)
            session.commit()  # hold no transaction (on SQLite: no write lock) while waiting
            barrier.wait()
            try:
                services.set_mark(session, actor, target, student_id, 80)
                session.commit()
                outcomes.append("saved")
            except services.GradesLocked:
                session.rollback()
                outcomes.append("locked")
            finally:
                session.remove()

    def finalise():
        with app.app_context():
            session = _db.session
            actor = session.get(User, instructor_id)
            target = session.get(Section, section_id)
            session.commit()
            barrier.wait()
            services.finalise_section(session, actor, target, now=factories.now())
            session.commit()
            session.remove()

    threads = [threading.Thread(target=enter_mark, args=(sid,)) for sid in student_ids]
    threads.append(threading.Thread(target=finalise))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == STUDENTS
    with app.app_context():
        session = _db.session
        marked = set(session.scalars(select(Mark.student_id).where(Mark.points.is_not(None))))
        grades = dict(
            session.execute(
                select(Registration.student_id, Registration.final_grade).where(
                    Registration.section_id == section_id
                )
            ).all()
        )
        session.remove()
        _db.engine.dispose()
    # 80 % is a B-: exactly the students whose mark was saved before finalising have it.
    assert {sid for sid, grade in grades.items() if grade == "B-"} == marked
    assert {sid for sid, grade in grades.items() if grade == "F"} == set(student_ids) - marked
    assert outcomes.count("saved") == len(marked)
