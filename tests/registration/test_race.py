"""Races for seats, decided by the database: real threads, each with its own session, on a real
SQLite file and on a real PostgreSQL server.

Each thread pushes its own application context (so its own session and connection), waits at a
barrier with the others, and only then loads its rows and calls the registration service, so
every thread is in the middle of the same rule at the same moment.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from portal.errors import RegistrationError
from portal.extensions import db as _db
from portal.models import Registration, Section, User
from portal.registration import services
from tests.conftest import BOTH_DATABASES
from tests.factories import make_section, make_term, make_user, now

pytestmark = BOTH_DATABASES

THREADS = 12
BARRIER_TIMEOUT = 30  # seconds; a thread stuck longer than this is a failure, not a hang


def race(app: Flask, jobs: list[Callable[[Any], str]]) -> list[str]:
    """Run each job(session) in its own thread, all released together; returns each job's
    outcome: its return value, the RegistrationError's message, or "ERROR: ..." for anything
    unexpected (which the tests then report)."""
    barrier = threading.Barrier(len(jobs), timeout=BARRIER_TIMEOUT)
    outcomes: list[str] = [""] * len(jobs)

    def worker(index: int, job: Callable[[Any], str]) -> None:
        with app.app_context():
            session = _db.session
            try:
                barrier.wait()
                outcomes[index] = job(session)
                session.commit()
            except RegistrationError as error:
                session.rollback()
                outcomes[index] = str(error)
            except Exception as error:  # reported by the test, never swallowed
                session.rollback()
                outcomes[index] = f"ERROR: {type(error).__name__}: {error}"
            finally:
                session.remove()

    threads = [
        threading.Thread(target=worker, args=(i, job), name=f"race-{i}")
        for i, job in enumerate(jobs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=BARRIER_TIMEOUT * 3)
        assert not thread.is_alive(), f"{thread.name} is still running"
    return outcomes


def register_job(student_id: uuid.UUID, section_id: uuid.UUID) -> Callable[[Any], str]:
    def job(session: Any) -> str:
        student = session.get(User, student_id)
        section = session.get(Section, section_id)
        return services.register(session, student, section, now=now()).status

    return job


def drop_job(registration_id: uuid.UUID) -> Callable[[Any], str]:
    def job(session: Any) -> str:
        registration = session.get(Registration, registration_id)
        promoted = services.drop(session, registration, now=now())
        return f"dropped, promoted {promoted.student_id}" if promoted else "dropped"

    return job


def assert_counts_match_rows(session: Any, section_id: uuid.UUID) -> tuple[int, int]:
    """The section's counters agree with its registration rows and respect its limits."""
    session.expire_all()
    section = session.get(Section, section_id)
    rows = dict(
        session.execute(
            select(Registration.status, func.count())
            .where(Registration.section_id == section_id)
            .group_by(Registration.status)
        ).all()
    )
    enrolled, waitlisted = rows.get("enrolled", 0), rows.get("waitlisted", 0)
    assert (section.enrolled_count, section.waitlist_count) == (enrolled, waitlisted)
    assert enrolled <= section.capacity
    assert waitlisted <= section.waitlist_capacity
    positions = session.scalars(
        select(Registration.waitlist_position).where(
            Registration.section_id == section_id, Registration.status == "waitlisted"
        )
    ).all()
    assert len(set(positions)) == len(positions), f"duplicate waitlist positions {positions}"
    return enrolled, waitlisted


def test_last_seat_goes_to_exactly_one_of_many(app: Flask, db: Any) -> None:
    section = make_section(db, term=make_term(db), capacity=1, waitlist_capacity=0)
    students = [make_user(db) for _ in range(THREADS)]
    section_id, label = section.id, section.label
    jobs = [register_job(s.id, section_id) for s in students]
    db.commit()  # read nothing after this: on SQLite a reading session would hold the lock

    outcomes = race(app, jobs)

    unexpected = [o for o in outcomes if o.startswith("ERROR")]
    assert not unexpected, unexpected
    assert outcomes.count("enrolled") == 1, outcomes
    full = f"{label} is full and its waitlist is full too (0 places)."
    assert outcomes.count(full) == THREADS - 1, outcomes
    assert assert_counts_match_rows(db, section_id) == (1, 0)
    total = db.scalar(select(func.count()).where(Registration.section_id == section_id))
    assert total == 1  # the losers left no row behind


def test_last_seats_and_waitlist_places_are_never_overfilled(app: Flask, db: Any) -> None:
    section = make_section(db, term=make_term(db), capacity=3, waitlist_capacity=4)
    students = [make_user(db) for _ in range(THREADS)]
    section_id = section.id
    jobs = [register_job(s.id, section_id) for s in students]
    db.commit()

    outcomes = race(app, jobs)

    unexpected = [o for o in outcomes if o.startswith("ERROR")]
    assert not unexpected, unexpected
    assert outcomes.count("enrolled") == 3, outcomes
    assert outcomes.count("waitlisted") == 4, outcomes
    assert sum("waitlist is full too" in o for o in outcomes) == THREADS - 7, outcomes
    assert assert_counts_match_rows(db, section_id) == (3, 4)
    positions = sorted(
        db.scalars(
            select(Registration.waitlist_position).where(
                Registration.section_id == section_id, Registration.status == "waitlisted"
            )
        )
    )
    assert positions == [1, 2, 3, 4]


def test_concurrent_drops_promote_each_waitlisted_student_once(app: Flask, db: Any) -> None:
    section = make_section(db, term=make_term(db), capacity=4, waitlist_capacity=8)
    holders = [make_user(db) for _ in range(4)]
    waiting = [make_user(db) for _ in range(6)]
    seats = [services.register(db, s, section, now=now()) for s in holders]
    for student in waiting:
        assert services.register(db, student, section, now=now()).status == "waitlisted"
    section_id = section.id
    waiting_ids = [str(s.id) for s in waiting]
    jobs = [drop_job(r.id) for r in seats]
    db.commit()

    outcomes = race(app, jobs)

    unexpected = [o for o in outcomes if o.startswith("ERROR")]
    assert not unexpected, unexpected
    promoted = {o.removeprefix("dropped, promoted ") for o in outcomes}
    # Four seats freed, four different students promoted: the first four in the queue.
    assert promoted == set(waiting_ids[:4]), outcomes
    assert assert_counts_match_rows(db, section_id) == (4, 2)
    still_waiting = db.scalars(
        select(Registration.student_id).where(
            Registration.section_id == section_id, Registration.status == "waitlisted"
        )
    ).all()
    assert {str(i) for i in still_waiting} == set(waiting_ids[4:])


@pytest.mark.parametrize("round_number", range(4))
def test_drops_and_registrations_racing_keep_counts_true(
    app: Flask, db: Any, round_number: int
) -> None:
    """Seats freed by drops while others join: never a free seat left behind a waitlist."""
    section = make_section(db, term=make_term(db), capacity=3, waitlist_capacity=3)
    holders = [make_user(db) for _ in range(3)]
    seats = [services.register(db, s, section, now=now()) for s in holders]
    newcomers = [make_user(db) for _ in range(THREADS - 3)]
    section_id = section.id
    jobs = [drop_job(r.id) for r in seats] + [register_job(s.id, section_id) for s in newcomers]
    db.commit()

    outcomes = race(app, jobs)

    unexpected = [o for o in outcomes if o.startswith("ERROR")]
    assert not unexpected, unexpected
    enrolled, waitlisted = assert_counts_match_rows(db, section_id)
    # Three seats were freed and nine students wanted one: every seat ends up taken (a student
    # is waitlisted only while the section is full), and the holders' rows are all dropped.
    assert enrolled == 3, f"{enrolled} enrolled, {waitlisted} waitlisted: {outcomes}"
    newcomer_outcomes = outcomes[3:]
    succeeded = newcomer_outcomes.count("waitlisted") + newcomer_outcomes.count("enrolled")
    assert succeeded == enrolled + waitlisted, outcomes
    assert all(
        o in {"enrolled", "waitlisted"} or "waitlist is full too" in o for o in newcomer_outcomes
    ), outcomes
