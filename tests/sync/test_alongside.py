"""The rows sent again alongside a refused change (`SyncedTable.alongside`): a device's own rule
changed them together with its change, in fields the server keeps (a section's seat counters,
the final grades a finalisation writes). When the server refuses the change, it sends the device
its own version of each of them with the next pull, and the device ends as the server is.

One scenario per table that declares rows alongside: a change the device makes offline that the
server then refuses; a table that declares them without a scenario here fails the first test."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from portal.extensions import db as _db
from portal.models import (
    Assessment,
    ChangeLogEntry,
    OutboxEntry,
    Section,
    SyncConflict,
    SyncState,
    Term,
    User,
)
from portal.sync import capture
from portal.sync.tables import BY_NAME, SYNCED_TABLES
from portal.sync.wire import row_to_json
from tests import factories
from tests.sync.conftest import Campus, Device, as_user, assert_replica_matches

# A scenario: given the campus, the server and a way to make a device, it makes a device, a
# change on it offline, and a change on the server meanwhile that has the server refuse it;
# it returns the device (not synced since the offline change).
Scenario = Callable[[Campus, Flask, Callable[..., Device]], Device]


def _registration_after_the_window_closed(
    campus: Campus, server: Flask, make_device: Callable[..., Device]
) -> Device:
    """A student registers offline (a seat taken on the device); the registration window
    closes on the server meanwhile."""
    from portal.registration.services import register

    with server.app_context():
        section = factories.make_section(_db.session, capacity=5, waitlist_capacity=0)
        _db.session.commit()
        section_id, term_id = section.id, section.term_id
    laptop = make_device("stud3")
    with laptop.session():
        as_user(laptop.app, campus.students[2])
        db = _db.session
        student = db.get(User, campus.students[2])
        assert register(db, student, db.get(Section, section_id), now=datetime.now(UTC))
        db.commit()
        assert db.get(Section, section_id).enrolled_count == 1
    with server.app_context():
        term = _db.session.get(Term, term_id)
        term.registration_opens_at = datetime.now(UTC) - timedelta(days=9)
        term.registration_closes_at = datetime.now(UTC) - timedelta(hours=1)
        _db.session.commit()
    return laptop


def _finalisation_after_the_weights_changed(
    campus: Campus, server: Flask, make_device: Callable[..., Device]
) -> Device:
    """The instructor finalises the grades offline (a letter grade written on each enrolled
    student's registration on the device); meanwhile an assessment's weight changes on the
    server, and the weights no longer add up to 100%."""
    from portal.grading.services import finalise_section

    with server.app_context():
        _db.session.add(
            Assessment(
                section_id=campus.section, name="Final", kind="exam", weight=50, max_points=100
            )
        )
        _db.session.commit()
    laptop = make_device("teach1")
    with laptop.session():
        as_user(laptop.app, campus.instructor)
        db = _db.session
        section = db.get(Section, campus.section)
        finalise_section(db, db.get(User, campus.instructor), section, now=datetime.now(UTC))
        db.commit()
        assert all(r.final_grade for r in section.registrations if r.status == "enrolled")
    with server.app_context():
        capture.attribute_to(_db.session, campus.instructor)
        _db.session.get(Assessment, campus.assessment).weight = 30
        _db.session.commit()
    return laptop


SCENARIOS: dict[str, Scenario] = {
    "registrations": _registration_after_the_window_closed,
    "grade_finalisations": _finalisation_after_the_weights_changed,
}


def test_every_table_that_sends_rows_alongside_a_refusal_has_a_scenario() -> None:
    assert set(SCENARIOS) == {entry.name for entry in SYNCED_TABLES if entry.alongside}


def _alongside_rows(app: Flask, table: str, fields: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """The rows `table` declares alongside a change with these fields, as `app` holds them."""
    rows: dict[tuple[str, str], Any] = {}
    with app.app_context():
        for along in BY_NAME[table].alongside:
            entry = BY_NAME[along.table]
            model: Any = entry.model
            value = uuid.UUID(str(fields[along.field]))
            found = _db.session.scalars(select(model).where(getattr(model, along.column) == value))
            for row in found:
                rows[(along.table, str(row.id))] = row_to_json(entry.table, row)
    return rows


@pytest.mark.parametrize("table", sorted(SCENARIOS))
def test_a_refused_change_brings_the_rows_declared_alongside_back_as_the_server_has_them(
    table: str, campus: Campus, server: Flask, make_device: Callable[..., Device]
) -> None:
    laptop = SCENARIOS[table](campus, server, make_device)
    with laptop.session():
        device_id = _db.session.scalar(select(SyncState.device_id))
    summary = laptop.sync()
    assert summary.refused == 1
    with server.app_context():
        conflict = _db.session.scalar(select(SyncConflict).filter_by(kind="refused"))
        assert conflict is not None and conflict.table_name == table
        fields = dict(conflict.lost_value)
        # Sent again to this device: the change log holds them for it alone.
        corrected = set(
            _db.session.execute(
                select(ChangeLogEntry.table_name, ChangeLogEntry.row_id).where(
                    ChangeLogEntry.device_id == device_id
                )
            )
        )
    on_server = _alongside_rows(server, table, fields)
    assert on_server, "the scenario's refused change has rows alongside it"
    assert {(name, str(row_id)) for name, row_id in corrected} >= set(on_server)
    # The device holds them as the server does, and everything else too.
    assert _alongside_rows(laptop.app, table, fields) == on_server
    assert_replica_matches(server, laptop)


@pytest.mark.parametrize("table", sorted(SCENARIOS))
def test_without_the_rows_alongside_the_device_would_keep_its_own(
    table: str, campus: Campus, server: Flask, make_device: Callable[..., Device]
) -> None:
    """The scenarios are ones where it matters: before the sync, the device's version of the
    rows alongside differs from the server's."""
    laptop = SCENARIOS[table](campus, server, make_device)
    with laptop.session():
        fields = _db.session.scalar(select(OutboxEntry.fields).filter_by(table_name=table))
    assert fields is not None
    assert _alongside_rows(laptop.app, table, fields) != _alongside_rows(server, table, fields)
