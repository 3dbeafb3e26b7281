"""Registering, dropping, the waitlist and its promotions are written to the audit trail."""

from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db as _db
from portal.models import AuditEntry, Registration
from portal.registration import services
from tests.conftest import post_form
from tests.factories import make_section, make_user, now


def _entries(db, action: str) -> list[AuditEntry]:
    return list(
        db.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.created_at)
        )
    )


def test_registering_for_a_free_seat_is_audited_as_the_student(db):
    student = make_user(db, full_name="Ada Lovelace")
    section = make_section(db, capacity=1)
    registration = services.register(db, student, section, now=now())
    [entry] = _entries(db, "registration.enrol")
    assert (entry.actor_id, entry.entity_type, entry.entity_id) == (
        student.id,
        "registration",
        str(registration.id),
    )
    assert entry.after == {
        "student_id": str(student.id),
        "section_id": str(section.id),
        "status": "enrolled",
    }
    assert entry.before is None
    assert entry.summary == f"Ada Lovelace ({student.username}) enrolled in {section.label} " + (
        f"({section.term.code})"
    )


def test_joining_the_waitlist_is_audited_with_the_position(db):
    section = make_section(db, capacity=1, waitlist_capacity=2)
    services.register(db, make_user(db), section, now=now())
    second = make_user(db)
    services.register(db, second, section, now=now())
    [entry] = _entries(db, "registration.waitlist")
    assert entry.actor_id == second.id
    assert (entry.after["status"], entry.after["waitlist_position"]) == ("waitlisted", 1)
    assert "joined the waitlist of" in entry.summary and "at position 1" in entry.summary
    assert _entries(db, "registration.enrol")[0].actor_id != second.id


def test_registering_again_after_a_drop_is_audited_from_dropped(db):
    student = make_user(db)
    section = make_section(db)
    services.drop(db, services.register(db, student, section, now=now()), now=now())
    services.register(db, student, section, now=now())
    entries = _entries(db, "registration.enrol")
    assert [e.before for e in entries] == [None, {"status": "dropped"}]


def test_dropping_is_audited(db):
    student = make_user(db)
    section = make_section(db)
    registration = services.register(db, student, section, now=now())
    services.drop(db, registration, now=now())
    [entry] = _entries(db, "registration.drop")
    assert (entry.actor_id, entry.entity_id) == (student.id, str(registration.id))
    assert (entry.before, entry.after) == ({"status": "enrolled"}, {"status": "dropped"})
    assert entry.summary.endswith(f"dropped {section.label} ({section.term.code})")
    assert _entries(db, "registration.leave_waitlist") == []


def test_leaving_the_waitlist_is_audited(db):
    section = make_section(db, capacity=1, waitlist_capacity=2)
    services.register(db, make_user(db), section, now=now())
    waiting = make_user(db)
    registration = services.register(db, waiting, section, now=now())
    services.drop(db, registration, now=now())
    [entry] = _entries(db, "registration.leave_waitlist")
    assert entry.actor_id == waiting.id
    assert entry.before == {"status": "waitlisted", "waitlist_position": 1}
    assert entry.after == {"status": "dropped"}
    assert _entries(db, "registration.drop") == []


def test_a_promotion_is_audited_as_made_by_whoever_freed_the_seat(db):
    section = make_section(db, capacity=1, waitlist_capacity=2)
    leaver, waiting = make_user(db), make_user(db, full_name="Wait Ing")
    seat = services.register(db, leaver, section, now=now())
    queued = services.register(db, waiting, section, now=now())
    assert services.drop(db, seat, now=now()) is queued
    [entry] = _entries(db, "registration.promote")
    assert (entry.actor_id, entry.entity_id) == (leaver.id, str(queued.id))
    assert entry.before == {"status": "waitlisted", "waitlist_position": 1}
    assert entry.after == {"status": "enrolled"}
    assert entry.summary.startswith(f"Wait Ing ({waiting.username}) was promoted from the waitlist")


def test_an_administrator_registering_a_student_is_the_one_audited(db):
    admin, student = make_user(db, "admin"), make_user(db)
    section = make_section(db)
    registration = services.register(db, student, section, now=now(), actor=admin, reason="Why")
    services.drop(db, registration, now=now(), actor=admin, reason="Why not")
    enrol, drop = _entries(db, "registration.enrol") + _entries(db, "registration.drop")
    assert (enrol.actor_id, enrol.reason, enrol.after["student_id"]) == (
        admin.id,
        "Why",
        str(student.id),
    )
    assert (drop.actor_id, drop.reason) == (admin.id, "Why not")


def test_the_log_names_the_student_the_section_and_the_registration(app, client, login_as):
    """Entries made through the pages: who, the record, and the ids in before/after all appear
    by name on the audit log, never as a raw UUID."""
    student = login_as("student", full_name="Ada Lovelace")
    with app.app_context():
        section = make_section(_db.session)
        _db.session.commit()
        section_id, label, term = section.id, section.label, section.term.code
    assert post_form(client, f"/sections/{section_id}/register", {}).status_code == 302
    with app.app_context():
        registration_id = _db.session.scalar(select(Registration.id))
    post_form(client, f"/registrations/{registration_id}/drop", {})
    post_form(client, "/logout", token_from="/registrations")
    login_as("admin")
    page = client.get("/admin/audit/?action=registration.").get_data(as_text=True)
    assert "<code>registration.enrol</code>" in page and "<code>registration.drop</code>" in page
    who = f"Ada Lovelace ({student.username})"
    assert f"{who} enrolled in {label} ({term})" in page
    assert f"· registration of {who} in {label} ({term})" in page  # the record
    assert f'<td class="text-break">{label} ({term})</td>' in page  # section_id, by name
    assert f'<td class="text-break">{who}</td>' in page  # student_id, by name
    for raw in (student.id, section_id, registration_id):
        assert str(raw) not in page
