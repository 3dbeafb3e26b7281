"""Database behaviour shared by every engine, and the `init-db` command."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask, current_app
from flask_sqlalchemy.pagination import Pagination, SelectPagination
from sqlalchemy import Engine, Select, event, func, text

# The newest Alembic revision in portal/migrations/versions (a test holds the two equal). The
# desktop launcher compares it with the database's alembic_version and, when they match, starts
# without importing Alembic at all.
SCHEMA_REVISION = "0015"

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
        # The busy timeout is the connection's `timeout` (lock_wait_seconds; flask_config).
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(Engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")


SQLITE_BUSY, SQLITE_LOCKED = 5, 6  # primary result codes
# lock_not_available (lock_timeout), deadlock_detected: the other change may go on; this one
# can be tried again.
POSTGRES_LOCK_WAITS = {"55P03", "40P01"}


def is_lock_wait(error: BaseException | None) -> bool:
    """True when the database gave up waiting for rows (or the whole file, on SQLite) that
    another transaction holds."""
    if error is None:
        return False
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in {SQLITE_BUSY, SQLITE_LOCKED}:
        return True
    return getattr(error, "sqlstate", None) in POSTGRES_LOCK_WAITS


def install_lock_wait(engine: Engine, seconds: int) -> None:
    """Waits for locks end after `seconds` as a `Busy` domain error (503 with Retry-After, or
    a message on the form), well before a web worker is timed out: PostgreSQL's lock_timeout is
    set on each new connection; SQLite's busy timeout is the connection's own `timeout`."""
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "connect")
        def _set_lock_timeout(dbapi_connection: Any, _record: Any) -> None:
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f"SET lock_timeout = {int(seconds * 1000)}")
            dbapi_connection.autocommit = autocommit

    @event.listens_for(engine, "handle_error")
    def _lock_wait_is_busy(context: Any) -> None:
        if is_lock_wait(context.original_exception):
            from portal.errors import Busy

            raise Busy() from context.sqlalchemy_exception


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


# --- migrations (Flask-Migrate and Alembic, imported only when they are used) -----------------


def setup_migrations(app: Flask) -> Any:
    """Bind Flask-Migrate to the app (once) and return its configuration.

    Importing Flask-Migrate imports Alembic, a large part of the portal's start-up time, and a
    start with an up-to-date database never needs it; so the factory only leaves placeholders
    (`app.extensions["migrate"]` and the `flask db` command group) that call this when used.
    """
    config = app.extensions.get("migrate")
    if config is None or isinstance(config, _DeferredMigrate):
        from flask_migrate import Migrate

        from portal import MIGRATIONS_DIR
        from portal.extensions import db

        Migrate(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
        config = app.extensions["migrate"]
    return config


def upgrade_schema() -> None:
    """Upgrade the current app's database to the newest migration."""
    from flask_migrate import upgrade

    setup_migrations(current_app)
    upgrade()


class _DeferredMigrate:
    """`app.extensions["migrate"]` until something reads it (Flask-Migrate's own functions, such
    as `flask_migrate.upgrade()`, do): then Flask-Migrate is set up for real and answers."""

    def __init__(self, app: Flask) -> None:
        self._app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(setup_migrations(self._app), name)


class _MigrationCommands(click.Group):
    """`flask db ...`: Flask-Migrate's command group, imported when a `db` command is run."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        from flask_migrate.cli import db as migrate_commands

        setup_migrations(current_app)  # the Flask CLI pushed the app context to find `db`
        return migrate_commands.make_context(info_name, args, parent=parent, **extra)


def register_migrations(app: Flask) -> None:
    app.extensions["migrate"] = _DeferredMigrate(app)
    app.cli.add_command(
        _MigrationCommands("db", help="Perform database migrations (Flask-Migrate).")
    )


def init_app(app: Flask) -> None:
    @app.cli.command("init-db")
    def init_db_command() -> None:
        """Create or upgrade the database schema to the latest migration."""
        upgrade_schema()
        click.echo("Database is at the latest schema.")


class _TotalInSamePage(SelectPagination):
    """A page of a select whose total comes with the page's rows (`count(*) OVER ()`), instead
    of from a second COUNT statement that runs the whole search again."""

    _total: int | None = None

    def _query_items(self) -> list[Any]:
        select = self._query_args["select"].add_columns(func.count().over())
        select = select.limit(self.per_page).offset(self._query_offset)
        rows = self._query_args["session"].execute(select).all()
        if rows:
            self._total = int(rows[0][-1])
        return [row[0] for row in rows]

    def _query_count(self) -> int:
        if self._total is not None:
            return self._total
        if self.page == 1:
            return 0  # no rows on the first page: nothing matches
        return int(super()._query_count())  # past the last page: count the matches


def paginate_one_statement(
    select: Select[Any], *, page: int | None = None, per_page: int, error_out: bool = False
) -> Pagination:
    """`db.paginate` for a select of one entity, without DISTINCT or eager-loaded collections
    (one row per item): the page's rows and the total in one statement (a second only for a
    page past the last one)."""
    from portal.extensions import db

    return _TotalInSamePage(
        select=select, session=db.session(), page=page, per_page=per_page, error_out=error_out
    )
