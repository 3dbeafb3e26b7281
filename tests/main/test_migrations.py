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
