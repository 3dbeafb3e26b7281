"""An account deactivated on the server, on a desktop copy that holds rows naming it: the next
sync keeps the account's row (marked deactivated) rather than failing on the rows that name it,
the person can no longer sign in on the copy, and the others still can."""

from __future__ import annotations

import sqlite3
import uuid

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from portal.extensions import db as _db
from portal.models import AuditEntry, Registration, SyncState, User, utcnow
from portal.sync.device import pull as device_pull
from portal.sync.device import runner as device
from portal.sync.device import sign_in as copy_sign_in
from portal.sync.device.client import SyncError
from portal.sync.wire import row_to_json
from tests import factories
from tests.conftest import post_form
from tests.sync.conftest import as_user, device_accounts, visible_rows


def _log_in(app, username, password=factories.PASSWORD):
    client = app.test_client()
    response = post_form(client, "/login", {"username": username, "password": password})
    return response


PIN = "482913"


def _pin_log_in(app, username):  # type: ignore[no-untyped-def]
    client = app.test_client()
    data = {"username": username, "pin": PIN}
    response = post_form(client, "/login/pin", data, token_from="/login/pin")
    page = response.get_data(as_text=True) if response.status_code != 302 else ""
    return response.status_code, page


def _deactivate(server, username, admin_id):
    from portal.accounts.services import set_active

    with server.app_context():
        as_user(server, admin_id)
        db = _db.session
        user = db.scalars(select(User).where(User.username == username)).one()
        set_active(db, user, False, actor=db.get(User, admin_id))
        db.commit()


def test_an_account_in_no_section_deactivated_on_the_server_stops_on_the_copy(
    campus, make_device, server
):
    with server.app_context():
        factories.make_user(_db.session, "lab_staff", username="lab2")  # staffs no section
        _db.session.commit()
    laptop = make_device("teach1")
    laptop.app.extensions[device.HTTP_CLIENT_KEY] = laptop.http
    try:
        assert _log_in(laptop.app, "lab2").status_code == 302  # joins the copy via the server
        laptop.sync()
        with laptop.session():
            lab2 = _db.session.scalars(select(User.id).where(User.username == "lab2")).one()
            named = _db.session.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.actor_id == lab2)
            )
        assert named, "the copy's own audit entries name the account"

        _deactivate(server, "lab2", campus.admin)
        summary = laptop.sync()
        assert summary is not None

        with laptop.session():
            account = _db.session.get(User, lab2)
            assert account is not None and account.active is False
            still_named = _db.session.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.actor_id == lab2)
            )
        assert still_named == named  # nothing the copy wrote is lost

        refused = _log_in(laptop.app, "lab2")
        assert refused.status_code == 401
        assert "This account has been deactivated." in refused.get_data(as_text=True)
        laptop.sync()  # a later sync succeeds
        expected = visible_rows(server, device_accounts(server, laptop))
        held = visible_rows(laptop.app)
        kept = held["users"].pop(str(lab2))  # only because the copy's own rows name it
        assert kept["active"] is False and kept["password_hash"] == "!"
        assert held == expected
        assert _log_in(laptop.app, "teach1").status_code == 302  # the others still sign in
    finally:
        device.runner_for(laptop.app).stop()


def test_a_page_that_fails_at_its_commit_leaves_the_database_unlocked(student_laptop):
    """A foreign key that SQLite checks at COMMIT (deferred) fails the page: the page's
    transaction is rolled back, so the database is not left locked for the copy's pages."""
    with student_laptop.session():
        registration = _db.session.scalars(select(Registration)).first()
        assert registration is not None
        row = row_to_json(Registration.__table__, registration)
        cursor = _db.session.scalar(select(SyncState.cursor))
        _db.session.rollback()
    row.update(id=str(uuid.uuid4()), student_id=str(uuid.uuid4()))  # an account never sent
    page = {"rows": {"registrations": [row]}, "upto": cursor, "next": {"table": 0}}
    database = student_laptop.engine.url.database
    with student_laptop.engine.connect() as connection:
        with pytest.raises(IntegrityError):
            device_pull.apply_page(connection, page)
        other = sqlite3.connect(database, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")  # "database is locked" if the page's is still open
            other.rollback()
        finally:
            other.close()
    with student_laptop.session():
        assert _db.session.get(Registration, uuid.UUID(row["id"])) is None


def test_a_copy_whose_every_account_is_deactivated_stops_signing_them_in(
    campus, make_device, server
):
    """When every account of a copy is deactivated on the server, the server refuses the
    copy's sync, and names those accounts in its refusal: the copy keeps them deactivated and
    without a password verifier, so that nobody signs in with them here, offline either, while
    it cannot sync. What the copy holds stays."""
    import socket

    import httpx

    with server.app_context():
        factories.make_user(_db.session, "lab_staff", username="lab2")
        _db.session.commit()
    laptop = make_device("teach1")
    laptop.app.extensions[device.HTTP_CLIENT_KEY] = laptop.http
    try:
        assert _log_in(laptop.app, "lab2").status_code == 302  # joins the copy via the server
        laptop.sync()
        held = visible_rows(laptop.app)
        with laptop.session():
            verifiers = dict(_db.session.execute(select(User.username, User.password_hash)).all())
        assert verifiers["teach1"] != "!" and verifiers["lab2"] != "!"  # offline sign-in works
        # lab2 also chose an offline PIN here (as after a single sign-on)
        with laptop.session():
            lab2_id = _db.session.scalars(select(User.id).where(User.username == "lab2")).one()
        copy_sign_in.record_online_sign_in(laptop.engine, lab2_id, now=utcnow())
        with laptop.session():
            lab2 = _db.session.get(User, lab2_id)
            copy_sign_in.set_pin(_db.session, lab2, PIN, now=utcnow())
            _db.session.commit()
        assert _pin_log_in(laptop.app, "lab2") == (302, "")

        _deactivate(server, "teach1", campus.admin)
        _deactivate(server, "lab2", campus.admin)
        with pytest.raises(SyncError) as refused:
            laptop.sync()
        assert "No active account is left on this device." in str(refused.value)

        with laptop.session():
            accounts = {
                user.username: (user.active, user.password_hash)
                for user in _db.session.scalars(
                    select(User).where(User.username.in_(["teach1", "lab2"]))
                )
            }
            error = _db.session.scalar(select(SyncState.last_error))
        assert accounts == {"teach1": (False, "!"), "lab2": (False, "!")}
        assert error == "No active account is left on this device."
        after = visible_rows(laptop.app)
        after.pop("users"), held.pop("users")
        assert after == held  # nothing else of the copy's was removed

        for username in ("teach1", "lab2"):  # the server, asked, says why
            response = _log_in(laptop.app, username)
            assert response.status_code == 401
            assert "This account has been deactivated." in response.get_data(as_text=True)

        with socket.socket() as probe:  # the server stops answering: offline sign-in only
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        runner = device.runner_for(laptop.app)
        runner.http = httpx.Client(timeout=5)
        with laptop.session():
            _db.session.execute(update(SyncState).values(server_url=f"http://127.0.0.1:{port}"))
            _db.session.commit()
        for username in ("teach1", "lab2"):
            assert _log_in(laptop.app, username).status_code == 401  # no verifier left here
        status, page = _pin_log_in(laptop.app, "lab2")
        assert status == 401 and "This account has been deactivated." in page
    finally:
        device.runner_for(laptop.app).stop()


def test_an_account_removed_by_a_discard_is_kept_deactivated_while_rows_name_it(
    campus, instructor_laptop
):
    """A change pull that discards accounts (rows the server no longer holds): one that a row
    of the copy still names is kept, deactivated and without a verifier, as after a snapshot;
    one whose only naming row is discarded with it is removed; the page commits."""
    stud1, stud2 = campus.students[:2]
    with instructor_laptop.session():
        db = _db.session
        registration = db.scalars(
            select(Registration.id).where(Registration.student_id == stud2)
        ).one()
        named_stud1 = db.scalar(
            select(func.count()).select_from(Registration).where(Registration.student_id == stud1)
        )
        state = db.scalars(select(SyncState)).one()
        cursor, fingerprint = state.cursor, state.scope_fingerprint
        db.rollback()
    assert named_stud1 == 1
    discards = [  # the account before the row that names it: the copy removes children first
        {"table": "users", "id": str(stud1)},
        {"table": "users", "id": str(stud2)},
        {"table": "registrations", "id": str(registration)},
    ]
    page = {"discards": discards, "upto": cursor, "complete": True, "fingerprint": fingerprint}
    with instructor_laptop.engine.connect() as connection:
        device_pull.apply_page(connection, page)
    with instructor_laptop.session():
        kept = _db.session.get(User, stud1)
        assert kept is not None and kept.active is False and kept.password_hash == "!"
        assert _db.session.get(User, stud2) is None
        assert _db.session.get(Registration, registration) is None
        assert (
            _db.session.scalar(
                select(func.count())
                .select_from(Registration)
                .where(Registration.student_id == stud1)
            )
            == named_stud1
        )
    instructor_laptop.sync()  # the copy still syncs
