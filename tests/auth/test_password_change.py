"""Changing one's own password, and the forced change after a one-time password."""

from __future__ import annotations

from flask import Flask

from portal.accounts.services import authenticate, password_problems
from portal.extensions import db as _db
from portal.models import User
from tests import factories
from tests.conftest import csrf_token, post_form

NEW = "Tidal-Basin-42"


def _login(app: Flask, username: str, password: str = factories.PASSWORD):
    client = app.test_client()
    response = post_form(client, "/login", {"username": username, "password": password})
    assert response.status_code == 302
    return client


def _change(client, current: str, new: str, confirm: str | None = None):
    return client.post(
        "/password",
        data={
            "csrf_token": csrf_token(client, "/password"),
            "current_password": current,
            "new_password": new,
            "confirm": new if confirm is None else confirm,
        },
    )


def _user(app: Flask, username: str) -> User:
    with app.app_context():
        user = _db.session.scalar(_db.select(User).where(User.username == username))
        _db.session.expunge(user)
        return user


def test_a_user_changes_their_password_and_other_sessions_end(app):
    with app.app_context():
        username = factories.make_user(_db.session, "student", full_name="Mira Okoye").username
        _db.session.commit()
    here = _login(app, username)
    elsewhere = _login(app, username)
    assert elsewhere.get("/registrations").status_code == 200

    page = here.get("/password")
    assert page.status_code == 200
    assert 'autocomplete="current-password"' in page.get_data(as_text=True)
    response = _change(here, factories.PASSWORD, NEW)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"

    # This session goes on; the other one is logged out; only the new password works.
    assert here.get("/registrations").status_code == 200
    gone = elsewhere.get("/registrations")
    assert gone.status_code == 302 and gone.headers["Location"].startswith("/login")
    with app.app_context():
        assert authenticate(_db.session, username, NEW, now=factories.now()) is not None
        assert authenticate(_db.session, username, factories.PASSWORD, now=factories.now()) is None


def test_a_wrong_current_password_or_a_weak_new_one_is_refused(app):
    with app.app_context():
        user = factories.make_user(_db.session, "instructor", full_name="Mira Okoye")
        _db.session.commit()
        username = user.username
    client = _login(app, username)
    for current, new, confirm, message in (
        ("not-my-password", NEW, None, "The current password is not right."),
        (factories.PASSWORD, "short1", None, "Use at least 8 characters."),
        (factories.PASSWORD, "password123", None, "too easy to guess"),
        (factories.PASSWORD, "12345678901", None, "Use letters as well as digits."),
        (factories.PASSWORD, f"{username}-2026", None, "your username or your name"),
        (factories.PASSWORD, "okoye-rules-77", None, "your username or your name"),
        (factories.PASSWORD, factories.PASSWORD, None, "must differ from the current one"),
        (factories.PASSWORD, NEW, "Tidal-Basin-43", "do not match"),
    ):
        response = _change(client, current, new, confirm)
        assert response.status_code == 422, new
        assert message in response.get_data(as_text=True), new
    with app.app_context():
        assert (
            authenticate(_db.session, username, factories.PASSWORD, now=factories.now()) is not None
        )
    assert _user(app, username).session_version == 0


def test_password_rules_accept_a_reasonable_password():
    assert password_problems("Tidal-Basin-42", username="mira", full_name="Mira Okoye") == []
    assert password_problems("correct horse battery") == []


def test_after_an_admin_reset_the_user_must_choose_a_password_first(app):
    with app.app_context():
        admin = factories.make_user(_db.session, "admin")
        target = factories.make_user(_db.session, "lab_staff")
        _db.session.commit()
        admin_name, username, target_id = admin.username, target.username, target.id
    old_session = _login(app, username)
    admin_client = _login(app, admin_name)
    response = post_form(
        admin_client,
        f"/admin/users/{target_id}/password",
        {"password": "one-time-pass-1", "confirm": "one-time-pass-1"},
        token_from="/admin/users/",
    )
    assert response.status_code == 302
    assert _user(app, username).must_change_password is True
    # The reset ends the user's sessions.
    assert old_session.get("/").headers["Location"].startswith("/login")

    client = _login(app, username, "one-time-pass-1")
    for path in ("/", "/courses", f"/admin/users/{target_id}/edit"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"] == "/password"
    page = client.get("/password")
    assert page.status_code == 200
    assert "one-time password" in page.get_data(as_text=True)
    assert _change(client, "one-time-pass-1", NEW).status_code == 302
    assert client.get("/").status_code == 200
    assert _user(app, username).must_change_password is False


def test_imported_accounts_with_a_one_time_password_must_change_it(db):
    from portal.admin.csv_import import import_file

    text = (
        "username,full_name,role,email,student_number,password\n"
        "kai,Kai Mendes,student,,S7000001,\n"
        "lea,Lea Roth,student,,S7000002,own-password-9\n"
    )
    report = import_file(db, "users", text.encode(), actor=None, now=factories.now())
    assert report.ok and report.imported == 2
    db.commit()
    accounts = {u.username: u.must_change_password for u in db.scalars(_db.select(User))}
    assert accounts == {"kai": True, "lea": False}
