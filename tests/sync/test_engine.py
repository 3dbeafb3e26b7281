"""The sync engine end to end in one process: device apps talk to the server app over HTTP
(httpx's WSGI transport), each over its own SQLite file."""

from __future__ import annotations

from sqlalchemy import func, select

from portal.extensions import db as _db
from portal.models import (
    Assessment,
    Mark,
    OutboxEntry,
    Registration,
    Section,
    User,
)
from tests.sync.conftest import as_user, wsgi_client


def _count(device, model, **where) -> int:
    with device.session():
        return _db.session.scalar(select(func.count()).select_from(model).filter_by(**where))


def test_enrol_pulls_the_accounts_scope_only(campus, make_device, server):
    laptop = make_device("stud1")
    with laptop.session():
        users = {u.username: u for u in _db.session.scalars(select(User))}
        regs = _db.session.scalars(select(Registration)).all()
    # Own account with its verifier; staff names without one; no other student at all.
    assert users["stud1"].password_hash.startswith("$argon2")
    assert users["teach1"].password_hash == "!"
    assert "stud2" not in users and "admin1" not in users
    assert {r.student_id for r in regs} == {campus.students[0]}
    assert _count(laptop, Section) == 2  # the catalogue is open to everyone


def test_offline_mark_reaches_the_server_once(campus, make_device, server):
    laptop = make_device("teach1")
    from portal.grading.services import set_mark

    with laptop.session():
        as_user(laptop.app, campus.instructor)
        instructor = _db.session.get(User, campus.instructor)
        assessment = _db.session.get(Assessment, campus.assessment)
        set_mark(_db.session, instructor, assessment, campus.students[0], 71)
        _db.session.commit()
    assert _count(laptop, OutboxEntry) == 1
    summary = laptop.sync()
    assert (summary.pushed, summary.conflicts) == (1, 0)
    assert _count(laptop, OutboxEntry) == 0
    with server.app_context():
        mark = _db.session.scalar(select(Mark).filter_by(student_id=campus.students[0]))
        assert mark.points == 71
    # A second sync sends nothing again and the device holds the server's row.
    assert laptop.sync().pushed == 0
    assert _count(laptop, Mark) == 1


def test_codes_cannot_be_guessed_faster_than_log_ins(server):
    http = wsgi_client(server)
    headers = {"X-Sync-Protocol": "1"}
    statuses = [
        http.post("/sync/v1/enrol", json={"code": f"WRONG-{n}"}, headers=headers).status_code
        for n in range(11)
    ]
    assert statuses == [422] * 10 + [429]
