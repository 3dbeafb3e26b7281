"""The audit log page, and the security actions that write to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from portal.audit.services import changes, record
from portal.extensions import db as _db
from portal.models import AuditEntry
from tests import factories
from tests.conftest import post_form


def _entries(app, action_prefix=""):
    with app.app_context():
        query = select(AuditEntry).order_by(AuditEntry.created_at)
        if action_prefix:
            query = query.where(AuditEntry.action.startswith(action_prefix))
        return [(e.action, e.actor_name, e.summary, e.after) for e in _db.session.scalars(query)]


def test_log_in_success_and_failure_are_recorded(app, client):
    with app.app_context():
        factories.make_user(_db.session, "student", username="logme")
        _db.session.commit()
    post_form(client, "/login", {"username": "LogMe", "password": "wrong-password"})
    post_form(client, "/login", {"username": "nobody", "password": "x" * 10})
    post_form(client, "/login", {"username": "logme", "password": factories.PASSWORD})
    entries = _entries(app, "auth.")
    assert [e[0] for e in entries] == ["auth.login_failed", "auth.login_failed", "auth.login"]
    assert entries[0][2] == "Failed log-in as 'logme'" and entries[0][1] == ""
    assert entries[1][3]["username"] == "nobody"
    assert entries[2][1] == "logme"
    assert all("password" not in str(e) for e in entries)


def test_account_admin_actions_are_recorded(app, client, login_as):
    login_as("admin")
    post_form(
        client,
        "/admin/users/new",
        {
            "username": "newbie",
            "full_name": "New Bie",
            "role": "lab_staff",
            "password": "s3cret-pass",
        },
    )
    with app.app_context():
        from portal.models import User

        user_id = _db.session.scalar(select(User.id).where(User.username == "newbie"))
    post_form(
        client,
        f"/admin/users/{user_id}/edit",
        {"username": "newbie", "full_name": "Renamed Bie", "role": "lab_staff"},
    )
    post_form(client, f"/admin/users/{user_id}/active", {"active": "0"})
    post_form(
        client,
        f"/admin/users/{user_id}/password",
        {"password": "another-pass", "confirm": "another-pass"},
    )
    entries = _entries(app, "account.")
    assert [e[0] for e in entries] == [
        "account.create",
        "account.update",
        "account.deactivate",
        "account.password_reset",
    ]
    assert entries[0][3]["role"] == "lab_staff"
    with app.app_context():
        update = _db.session.scalar(select(AuditEntry).where(AuditEntry.action == "account.update"))
        assert (update.before, update.after) == (
            {"full_name": "New Bie"},
            {"full_name": "Renamed Bie"},
        )
    assert "pass" not in str([e[3] for e in entries])


def test_log_page_filters_and_shows_before_and_after(app, client, login_as):
    admin = login_as("admin")
    with app.app_context():
        session = _db.session
        other = factories.make_user(session, "admin", username="otheradmin")
        old = record(
            session,
            other,
            "term.update",
            entity_type="term",
            summary="Old edit",
            before={"name": "A"},
            after={"name": "B"},
        )
        old.created_at = datetime(2020, 1, 5, 12, tzinfo=UTC)
        record(
            session,
            other,
            "course.create",
            entity_type="course",
            summary="Made a course",
            after={"code": "NEW1"},
        )
        record(
            session, session.merge(admin), "term.archive", entity_type="term", summary="Archived T9"
        )
        session.commit()

    page = client.get("/admin/audit/?action=term.update").get_data(as_text=True)
    assert "Old edit" in page and "Made a course" not in page and "Archived T9" not in page
    assert "Before and after" in page
    assert '<td class="text-break">A</td><td class="text-break">B</td>' in page

    page = client.get("/admin/audit/?actor=OtherAdmin&entity_type=course").get_data(as_text=True)
    assert "Made a course" in page and "Old edit" not in page

    page = client.get("/admin/audit/?since=2020-01-05&until=2020-01-05").get_data(as_text=True)
    assert "Old edit" in page and "Made a course" not in page

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    page = client.get(f"/admin/audit/?since={tomorrow}").get_data(as_text=True)
    assert "No entries" in page

    page = client.get("/admin/audit/?since=yesterday").get_data(as_text=True)
    assert "the wrong one was ignored" in page and "Made a course" in page

    page = client.get("/admin/audit/").get_data(as_text=True)
    assert '<option value="course.create"' in page and '<option value="course"' in page


def test_log_is_paginated(app, client, login_as):
    login_as("admin")
    with app.app_context():
        for n in range(app.config["PAGE_SIZE"] + 3):
            record(_db.session, None, "test.bulk", summary=f"entry number {n:03d}")
        _db.session.commit()
    first = client.get("/admin/audit/?action=test.").get_data(as_text=True)
    second = client.get("/admin/audit/?action=test.&page=2").get_data(as_text=True)
    assert "page 1 of 2" in first and "page 2 of 2" in second
    assert first.count("entry number") == app.config["PAGE_SIZE"]
    assert second.count("entry number") == 3


def test_changes_lists_every_field_once():
    entry = AuditEntry(action="x", before={"a": 1, "b": 2}, after={"b": 3, "c": 4})
    assert [(c.field, c.before, c.after) for c in changes(entry)] == [
        ("a", 1, None),
        ("b", 2, 3),
        ("c", None, 4),
    ]


def test_log_shows_people_and_records_by_name_never_an_id(app, client, login_as):
    admin = login_as("admin", full_name="Ada Admin")
    with app.app_context():
        session = _db.session
        old = factories.make_user(session, "instructor", full_name="Grace Hopper")
        new = factories.make_user(session, "instructor", full_name="Alan Turing")
        section = factories.make_section(session, instructor_id=old.id)
        session.commit()
        section_id, label = section.id, section.label
        old_id, new_id, old_name = old.id, new.id, old.username
    with app.app_context():
        session = _db.session
        record(
            session,
            session.merge(admin),
            "section.update",
            entity_type="section",
            entity_id=section_id,
            summary="Changed the instructor",
            before={"instructor_id": old_id},
            after={"instructor_id": new_id},
        )
        session.commit()
    page = client.get("/admin/audit/?action=section.update").get_data(as_text=True)
    assert f"Grace Hopper ({old_name})" in page and "Alan Turing (" in page
    assert f"· {label} (" in page  # the record the entry is about
    assert "Ada Admin (" in page  # who
    assert ">instructor</th>" in page
    assert str(old_id) not in page and str(new_id) not in page and str(section_id) not in page
