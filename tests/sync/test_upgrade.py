"""A device offline across an app upgrade keeps its outbox through the schema upgrade and
syncs afterwards (the upgrade runs as the launcher runs it: backup first, then Alembic)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from flask_migrate import downgrade, upgrade
from sqlalchemy import func, select

from desktop.database import current_revision, migrate
from desktop.paths import resolve
from portal import create_app
from portal.database import SCHEMA_REVISION
from portal.extensions import db as _db
from portal.grading.services import set_mark
from portal.models import Assessment, Mark, OutboxEntry, User
from portal.sync.device import client as sync_client
from portal.sync.device import runner as sync_runner
from tests.sync.conftest import SERVER_URL, as_user, enrolment_code, wsgi_client

# The first schema revision that has an outbox: a device at this revision can hold changes.
FIRST_SYNC_REVISION = "0005"


def test_outbox_survives_the_upgrade_and_is_pushed(tmp_path: Path, server, campus):
    paths = resolve(tmp_path / "laptop")
    paths.data_dir.mkdir(parents=True)
    config = {
        "MODE": "desktop",
        "DATA_DIR": str(paths.data_dir),
        "DATABASE_URL": f"sqlite:///{paths.database}",
        "SECRET_KEY": "test-secret-key-not-for-production",
    }
    old = create_app(config)
    with old.app_context():
        # Today's models are used to make the device's changes, so the schema is today's while
        # they are made; it is taken down to the first revision with an outbox afterwards.
        upgrade()
        engine = _db.engine
    http = wsgi_client(server)
    sync_client.enrol(
        engine, SERVER_URL, enrolment_code(server, "teach1"), device_name="lt", client=http
    )
    sync_runner.sync_once(engine, paths.data_dir / "files", client=http)
    with old.app_context():
        as_user(old, campus.instructor)
        instructor = _db.session.get(User, campus.instructor)
        assessment = _db.session.get(Assessment, campus.assessment)
        set_mark(_db.session, instructor, assessment, campus.students[1], Decimal("64.5"))
        _db.session.commit()
        _db.session.remove()
        downgrade(revision=FIRST_SYNC_REVISION)  # the database as the older version left it
        _db.engine.dispose()
    assert current_revision(paths.database) == FIRST_SYNC_REVISION

    new = create_app(config)
    migrate(new, paths)  # what the launcher does at the next start
    assert current_revision(paths.database) == SCHEMA_REVISION
    with new.app_context():
        assert _db.session.scalar(select(func.count(OutboxEntry.seq))) == 1
        engine = _db.engine
    summary = sync_runner.sync_once(engine, paths.data_dir / "files", client=http)
    assert summary.pushed == 1
    with server.app_context():
        mark = _db.session.scalar(select(Mark).filter_by(student_id=campus.students[1]))
        assert mark is not None and mark.points == 64.5
    with new.app_context():
        assert _db.session.scalar(select(func.count(OutboxEntry.seq))) == 0
        _db.session.remove()
        _db.engine.dispose()
