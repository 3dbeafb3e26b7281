"""Database behaviour shared by every engine, and the `init-db` command."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import Engine, event, text

_installed = False


def install_sqlite_behaviour() -> None:
    """WAL, foreign keys and a busy timeout on every SQLite connection; write transactions
    begin with BEGIN IMMEDIATE so that two writers queue instead of failing on upgrade."""
    global _installed
    if _installed:
        return
    _installed = True

    @event.listens_for(Engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        if type(dbapi_connection).__module__.split(".")[0] not in {"sqlite3", "pysqlite2"}:
            return
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event emits BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(Engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def database_state() -> dict[str, Any]:
    """What /healthz reports about the database: reachable, and at which migration."""
    from portal.extensions import db

    try:
        revision = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
        db.session.rollback()
        return {"status": "ok", "dialect": db.engine.dialect.name, "revision": revision}
    except Exception as exc:  # any failure is reported, not raised: this is a health check
        db.session.rollback()
        return {"status": "error", "error": type(exc).__name__}


def init_app(app: Flask) -> None:
    @app.cli.command("init-db")
    def init_db_command() -> None:
        """Create or upgrade the database schema to the latest migration."""
        upgrade()
        click.echo("Database is at the latest schema.")
