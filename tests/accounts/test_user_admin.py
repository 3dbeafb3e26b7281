"""Admin management of user accounts, through the pages and the service rules."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.accounts import services
from portal.accounts.services import UserDetails, authenticate
from portal.errors import ValidationError
from portal.extensions import db as _db
from portal.models import User, utcnow
from tests import factories
from tests.conftest import post_form


def _user(app, username):
    with app.app_context():
        return _db.session.scalar(select(User).where(User.username == username))


def test_admin_creates_a_student(app, client, login_as):
    login_as("admin")
    response = post_form(
        client,
        "/admin/users/new",
        {
            "username": "newstudent",
            "full_name": "New Student",
            "role": "student",
            "student_number": "S9999999",
            "password": "long-enough-pass",
            "email": "",
        },
        token_from="/admin/users/new",
    )
    assert response.status_code == 302
    created = _user(app, "newstudent")
    assert created.role == "student" and created.student_number == "S9999999"


def test_create_form_errors_keep_what_was_typed(app, client, login_as):
    login_as("admin")
    response = post_form(
        client,
        "/admin/users/new",
        {"username": "Bad Name!", "full_name": "Kept Name", "role": "student", "password": "short"},
        token_from="/admin/users/new",
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Use lower-case letters" in body
    assert 'value="Kept Name"' in body
    assert "is-invalid" in body


def test_student_number_required_for_students(db):
    with pytest.raises(ValidationError, match="Students need a student number"):
        services.create_user(db, UserDetails("abc", "A B C", "student"), "long-enough-pass")


def test_duplicate_username_and_student_number_are_refused(db):
    existing = factories.make_user(db, "student")
    with pytest.raises(ValidationError, match="already taken"):
        services.create_user(
            db, UserDetails(existing.username, "X", "instructor"), "long-enough-pass"
        )
    with pytest.raises(ValidationError, match="already in use"):
        services.create_user(
            db,
            UserDetails("fresh", "X", "student", student_number=existing.student_number),
            "long-enough-pass",
        )


def test_admin_deactivates_and_reactivates(app, client, login_as):
    login_as("admin")
    with app.app_context():
        target = factories.make_user(_db.session, "student")
        _db.session.commit()
        target_id, username = target.id, target.username
    post_form(
        client, f"/admin/users/{target_id}/active", {"active": "0"}, token_from="/admin/users/"
    )
    assert _user(app, username).active is False
    with app.app_context():
        assert authenticate(_db.session, username, factories.PASSWORD, now=utcnow()) is None
    post_form(
        client, f"/admin/users/{target_id}/active", {"active": "1"}, token_from="/admin/users/"
    )
    assert _user(app, username).active is True


def test_admin_cannot_deactivate_themselves(app, client, login_as):
    admin = login_as("admin")
    response = post_form(
        client,
        f"/admin/users/{admin.id}/active",
        {"active": "0"},
        token_from="/admin/users/",
        follow_redirects=True,
    )
    assert "cannot deactivate your own account" in response.get_data(as_text=True)
    assert _user(app, admin.username).active is True


def test_admin_resets_a_password(app, client, login_as):
    login_as("admin")
    with app.app_context():
        target = factories.make_user(_db.session, "lab_staff")
        _db.session.commit()
        target_id, username = target.id, target.username
    mismatch = post_form(
        client,
        f"/admin/users/{target_id}/password",
        {"password": "brand-new-pass", "confirm": "other-pass!"},
        token_from="/admin/users/",
    )
    assert "do not match" in mismatch.get_data(as_text=True)
    post_form(
        client,
        f"/admin/users/{target_id}/password",
        {"password": "brand-new-pass", "confirm": "brand-new-pass"},
        token_from="/admin/users/",
    )
    with app.app_context():
        assert authenticate(_db.session, username, "brand-new-pass", now=utcnow()) is not None


def test_user_list_search_and_role_filter(app, client, login_as):
    login_as("admin")
    with app.app_context():
        factories.make_user(_db.session, "instructor", full_name="Grace Hopper")
        factories.make_user(_db.session, "student", full_name="Alan Turing")
        _db.session.commit()
    body = client.get("/admin/users/?q=hopper").get_data(as_text=True)
    assert "Grace Hopper" in body and "Alan Turing" not in body
    body = client.get("/admin/users/?role=student").get_data(as_text=True)
    assert "Alan Turing" in body and "Grace Hopper" not in body
    assert "No users found" in client.get("/admin/users/?q=nobody-like-this").get_data(as_text=True)


def test_create_user_command(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "create-user",
            "cliadmin",
            "--role",
            "admin",
            "--name",
            "Cli Admin",
            "--password",
            "long-enough-pass",
        ]
    )
    assert result.exit_code == 0, result.output
    assert _user(app, "cliadmin").role == "admin"
    again = runner.invoke(
        args=[
            "create-user",
            "cliadmin",
            "--role",
            "admin",
            "--name",
            "Cli Admin",
            "--password",
            "long-enough-pass",
        ]
    )
    assert again.exit_code != 0 and "already taken" in again.output


def test_every_problem_of_a_user_form_is_shown_at_once(app, client, login_as):
    """A username the form refuses and a student without a student number (the service's rule)
    are reported in the same round, each once; nothing is created."""
    login_as("admin")
    response = post_form(
        client,
        "/admin/users/new",
        {
            "username": "Bad Name",
            "full_name": "",
            "role": "student",
            "student_number": "",
            "password": "long-enough-password",
        },
        token_from="/admin/users/new",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="username-error"' in page and 'id="full_name-error"' in page
    assert "Students need a student number." in page
    assert page.count("lower-case letters") == 1
    with app.app_context():
        assert _db.session.scalar(select(User).where(User.role == "student")) is None
