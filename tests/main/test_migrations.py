"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade

from portal.extensions import db
from tests.conftest import make_app


def _assert_migrations_match_models(app):
    with app.app_context():
        db.drop_all()
        upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"render_as_batch": True})
            differences = compare_metadata(context, db.metadata)
    assert differences == [], "models changed without a migration: flask db migrate"


def test_migrations_match_models_on_sqlite(tmp_path):
    _assert_migrations_match_models(make_app(tmp_path, f"sqlite:///{tmp_path / 'm.db'}"))


@pytest.mark.postgres
def test_migrations_match_models_on_postgresql(tmp_path, postgres_url):
    _assert_migrations_match_models(make_app(tmp_path, postgres_url))


def test_the_migrations_check_the_values_the_models_declare(tmp_path):
    """Roles, statuses and kinds are declared once in portal/models.py and its CHECK
    constraints are built from them; a value added there needs a migration (compare_metadata
    does not compare CHECK constraints, so this test does)."""
    from sqlalchemy import CheckConstraint

    app = make_app(tmp_path, f"sqlite:///{tmp_path / 'c.db'}")
    with app.app_context():
        db.drop_all()
        upgrade()
        with db.engine.connect() as connection:
            tables = "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
            schema = dict(connection.exec_driver_sql(tables).all())
    checked = 0
    for table in db.metadata.tables.values():
        for constraint in table.constraints:
            condition = str(getattr(constraint, "sqltext", ""))
            if isinstance(constraint, CheckConstraint) and " IN (" in condition:
                assert condition in schema[table.name], f"{table.name}: {condition}"
                checked += 1
    assert checked >= 4


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(app):
    with app.app_context(), db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 15000


def test_schema_revision_is_the_newest_migration():
    """The desktop launcher trusts portal.database.SCHEMA_REVISION to skip Alembic at start-up:
    it must name the one head of the migrations, so a new migration must update it."""
    from alembic.script import ScriptDirectory

    from portal import MIGRATIONS_DIR
    from portal.database import SCHEMA_REVISION

    assert ScriptDirectory(str(MIGRATIONS_DIR)).get_heads() == [SCHEMA_REVISION]


def _count_triggers(connection):
    """The dashboard's count triggers (and on PostgreSQL their functions) as the database holds
    them."""
    if connection.dialect.name == "sqlite":
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
        return [(name, " ".join(sql.split())) for name, sql in connection.exec_driver_sql(query)]
    triggers = connection.exec_driver_sql(
        "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal "
        "ORDER BY tgname"
    ).all()
    functions = connection.exec_driver_sql(
        "SELECT proname, prosrc FROM pg_proc "
        "WHERE proname IN ('count_section_grades', 'count_lab_session_attendance') "
        "ORDER BY proname"
    ).all()
    return [tuple(row) for row in triggers + functions]


def _assert_migration_keeps_the_dashboard_counts(app, monkeypatch):
    """Migration 0010 makes the triggers the models make (create_all), and fills the counts from
    the rows already there. (The rows are made at revision 0009 with today's models: without a
    device's change capture, whose sync_state columns are the newest revision's.)"""
    from portal.sync import capture

    monkeypatch.setattr(capture, "mode_of", lambda _session: None)
    from sqlalchemy import func, select

    from portal.models import (
        AttendanceRecord,
        LabSessionAttendanceCount,
        Registration,
        SectionGradeCount,
    )
    from tests import factories

    with app.app_context():
        with db.engine.connect() as connection:
            made_by_models = _count_triggers(connection)
        db.drop_all()
        upgrade(revision="0009")
        section = factories.make_section(db.session)
        lab = factories.make_lab_session(db.session, section)
        for grade, status in [("A", "present"), ("A", "late"), ("B", "absent"), (None, "late")]:
            student = factories.make_user(db.session, "student")
            db.session.add(
                Registration(
                    student_id=student.id,
                    section_id=section.id,
                    status="enrolled",
                    final_grade=grade,
                )
            )
            db.session.add(
                AttendanceRecord(lab_session_id=lab.id, student_id=student.id, status=status)
            )
        db.session.commit()
        monkeypatch.undo()
        upgrade()
        with db.engine.connect() as connection:
            assert _count_triggers(connection) == made_by_models
        assert len(made_by_models) >= 6
        grades = db.session.execute(
            select(SectionGradeCount.final_grade, SectionGradeCount.registrations).order_by(
                SectionGradeCount.final_grade
            )
        ).all()
        assert [tuple(row) for row in grades] == [("A", 2), ("B", 1)]
        attendance = db.session.get(LabSessionAttendanceCount, lab.id)
        assert (attendance.present, attendance.late, attendance.absent, attendance.excused) == (
            1,
            2,
            1,
            0,
        )
        # and the triggers the migration made keep counting
        db.session.execute(
            Registration.__table__.update().values(final_grade="C")  # type: ignore[attr-defined]
        )
        assert db.session.scalar(select(func.sum(SectionGradeCount.registrations))) == 4


def test_the_migration_keeps_the_dashboard_counts_on_sqlite(tmp_path, monkeypatch):
    _assert_migration_keeps_the_dashboard_counts(
        make_app(tmp_path, f"sqlite:///{tmp_path / 'd.db'}"), monkeypatch
    )


@pytest.mark.postgres
def test_the_migration_keeps_the_dashboard_counts_on_postgresql(
    tmp_path, postgres_url, monkeypatch
):
    _assert_migration_keeps_the_dashboard_counts(make_app(tmp_path, postgres_url), monkeypatch)
