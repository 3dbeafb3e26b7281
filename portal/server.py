"""`campus-portal-server`: run the central campus server (gunicorn, PostgreSQL, Redis).

    campus-portal-server migrate                 bring the database schema up to date, then exit
    campus-portal-server create-admin USERNAME --name "FULL NAME" [--email ADDRESS]
                                                 an administrator account (the first one of a
                                                 new server); the password is asked for, or
                                                 read from the first line of standard input
    campus-portal-server enrolment-code create --user USERNAME [--expires-in-days N]
                                                 a single-use code that enrols one device
    campus-portal-server [serve] [--bind ADDR] [--workers N] [--config gunicorn.conf.py]
                                                 gunicorn with the shipped settings
                                                 (portal/gunicorn_conf.py), changed by --config
    campus-portal-server worker [--burst]        run background jobs (CSV imports) from Redis
    campus-portal-server release ...             the signed release repository the desktop
                                                 copies update from (portal/updates/repository.py)

Settings come from PORTAL_* environment variables (see installers/server/server.env.example);
the deployment files in installers/server/ run this command under systemd behind nginx.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_BIND = "127.0.0.1:8000"  # PORTAL_BIND changes it (portal/gunicorn_conf.py)
GUNICORN_SETTINGS = "python:portal.gunicorn_conf"  # the shipped settings, always loaded first

# `--help` lists every command, also those with options of their own (parsed separately).
COMMANDS_HELP = """commands:
  serve            run gunicorn (the default)
  migrate          bring the database schema up to date, then exit
  create-admin USERNAME --name "FULL NAME" [--email ADDRESS]
                   an administrator account (the first of a new server); the password is
                   asked for twice, or read from the first line of standard input
  worker [--burst] run background jobs (CSV imports) from Redis
  enrolment-code create --user USERNAME [--expires-in-days N]
                   a single-use code that enrols one device (the code alone on the last line)
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from portal import __version__

    parser = argparse.ArgumentParser(
        prog="campus-portal-server",
        description="Campus Portal central server",
        epilog=COMMANDS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"Campus Portal {__version__}")
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "migrate", "worker"],
        help="default: serve",
    )
    parser.add_argument(
        "--bind", default=None, help=f"address to listen on (default {DEFAULT_BIND})"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="gunicorn worker processes (default: WEB_CONCURRENCY, else 2 per core + 1, at most 9)",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="a gunicorn configuration file whose settings change the shipped ones "
        "(portal/gunicorn_conf.py: gthread workers, 60 s timeout; see installers/server)",
    )
    parser.add_argument("--burst", action="store_true", help="worker: stop once the queue is empty")
    return parser.parse_args(argv)


def check_settings() -> dict[str, Any]:
    """Read the settings as the workers will, so that a mistake stops here with a clear line."""
    from portal.config import load_settings

    settings = load_settings({"MODE": "server"})
    storage = settings["RATELIMIT_STORAGE_URI"]
    if storage.startswith("memory"):
        print(
            "warning: PORTAL_RATELIMIT_STORAGE_URI is memory://: each worker counts log-in "
            "attempts on its own; set a redis:// URL",
            file=sys.stderr,
        )
    if not settings["JOB_QUEUE_URL"]:
        print(
            "warning: PORTAL_JOB_QUEUE_URL is not set: CSV imports run in threads of the web "
            "workers and stop when a worker is recycled; set a redis:// URL and run "
            "`campus-portal-server worker`",
            file=sys.stderr,
        )
    return settings


def migrate() -> int:
    from flask_migrate import upgrade

    from portal.extensions import db
    from portal.sync.capture import backfill
    from portal.sync.tables import SYNCED_TABLES
    from portal.wsgi import create_server_app

    app = create_server_app()
    with app.app_context():
        upgrade()
        # Rows that predate sync (or were loaded in bulk) enter the change log once.
        added = sum(backfill(db.session(), entry.name) for entry in SYNCED_TABLES)
        db.session.commit()
    print("Database is at the latest schema.")
    if added:
        print(f"{added} existing row(s) entered the sync change log.")
    return 0


def enrolment_code(argv: list[str]) -> int:
    """`enrolment-code create --user USERNAME [--expires-in-days N]`: prints the code alone on
    its last line (scripts take that line)."""

    from sqlalchemy import select

    from portal.errors import PortalError
    from portal.extensions import db
    from portal.models import User, utcnow
    from portal.sync.server.enrolment import create_enrolment_code
    from portal.wsgi import create_server_app

    parser = argparse.ArgumentParser(prog="campus-portal-server enrolment-code")
    parser.add_argument("action", choices=["create"])
    parser.add_argument("--user", required=True, metavar="USERNAME")
    parser.add_argument("--expires-in-days", type=int, default=7, metavar="N")
    args = parser.parse_args(argv)
    app = create_server_app()
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == args.user))
        if user is None:
            print(f"campus-portal-server: no account named {args.user!r}", file=sys.stderr)
            return 2
        try:
            code = create_enrolment_code(
                db.session(),
                user,
                created_by=None,
                now=utcnow(),
                valid_days=args.expires_in_days,
            )
        except PortalError as error:
            print(f"campus-portal-server: {error}", file=sys.stderr)
            return 2
        db.session.commit()
    print(f"Enrolment code for {args.user} (single use, valid {args.expires_in_days} days):")
    print(code)
    return 0


def _new_password() -> str | None:
    """Asked for twice at a terminal; else the first line of standard input (scripts)."""
    import getpass

    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        print(
            "campus-portal-server: the two passwords differ; nothing was created", file=sys.stderr
        )
        return None
    return first


def create_admin(argv: list[str]) -> int:
    """`create-admin USERNAME --name "FULL NAME" [--email ADDRESS]`: an administrator account,
    audited. Exit code 2 (nothing created) for a taken username or a weak password."""
    from portal.accounts.services import create_administrator, password_problems
    from portal.errors import PortalError
    from portal.extensions import db
    from portal.wsgi import create_server_app

    parser = argparse.ArgumentParser(prog="campus-portal-server create-admin")
    parser.add_argument("username")
    parser.add_argument("--name", required=True, metavar="FULL NAME")
    parser.add_argument("--email", default="", metavar="ADDRESS")
    args = parser.parse_args(argv)
    password = _new_password()
    if password is None:
        return 2
    if problems := password_problems(password, username=args.username, full_name=args.name):
        print(f"campus-portal-server: {' '.join(problems)} Nothing was created.", file=sys.stderr)
        return 2
    app = create_server_app()
    with app.app_context():
        try:
            admin = create_administrator(
                db.session(),
                args.username,
                full_name=args.name,
                email=args.email,
                password=password,
                action="account.create",
                summary="Created administrator {username} from the command line",
                by_themselves=False,
            )
        except PortalError as error:
            print(f"campus-portal-server: {error} Nothing was created.", file=sys.stderr)
            return 2
        db.session.commit()
        print(f"Created administrator {admin.username}.")
    return 0


def prepare_metrics_directory() -> str:
    """PROMETHEUS_MULTIPROC_DIR for the workers' metric files: IT's choice or a new one, emptied
    of the files of an earlier run (their counters would be added to this run's)."""
    from portal.operations.metrics import MULTIPROC_ENV

    path = Path(
        os.environ.get(MULTIPROC_ENV)
        or Path(tempfile.gettempdir()) / f"campus-portal-metrics-{os.getpid()}"
    )
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    return str(path)


def settle_worker(_worker: Any = None) -> None:
    """gunicorn hook (post_worker_init): the app a worker loaded (Flask, SQLAlchemy, the
    schemas and routes: a few hundred thousand objects) lives as long as the worker, so it is
    moved out of the garbage collector's view (gc.freeze). A full collection then walks only
    what requests made, rather than stopping a request for tens of milliseconds while it walks
    the whole app (a large sync page allocates enough to set one off)."""
    gc.collect()
    gc.freeze()


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: a worker that exited (recycled, crashed) stops counting in live gauges."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def gunicorn_server(bind: str | None, workers: int | None, config_file: str | None) -> Any:
    """gunicorn with the portal's factory, configured: the shipped settings
    (portal/gunicorn_conf.py), then the config file's, then the flags (no argv)."""
    from gunicorn.app.base import Application

    class PortalServer(Application):  # type: ignore[misc]
        def init(self, parser: Any, opts: Any, args: Any) -> None:
            return None

        def load_config(self) -> None:
            self.load_config_from_module_name_or_filename(GUNICORN_SETTINGS)
            if config_file:
                self.load_config_from_file(config_file)
            if bind:
                self.cfg.set("bind", [bind])
            if workers:
                self.cfg.set("workers", workers)
            self.cfg.set("default_proc_name", "campus-portal-server")

        def load(self) -> Any:
            from portal.wsgi import create_server_app

            return create_server_app()

    return PortalServer()


def serve(bind: str | None, workers: int | None, config_file: str | None) -> int:
    prepare_metrics_directory()
    gunicorn_server(bind, workers, config_file).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["release"]:  # no database: it may run on an offline signing machine
        from portal.updates import repository

        return repository.main(argv[1:])
    if argv[:1] == ["enrolment-code"]:
        os.environ["PORTAL_MODE"] = "server"
        return enrolment_code(argv[1:])
    if argv[:1] == ["create-admin"]:
        os.environ["PORTAL_MODE"] = "server"
        return create_admin(argv[1:])
    args = parse_args(argv)
    os.environ["PORTAL_MODE"] = "server"
    from portal.config import ConfigError

    try:
        check_settings()
    except ConfigError as exc:
        print(f"campus-portal-server: {exc}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        return migrate()
    if args.command == "worker":
        return worker(burst=args.burst)
    return serve(args.bind, args.workers, args.config)


def worker(*, burst: bool = False) -> int:
    from portal import jobs
    from portal.wsgi import create_server_app

    app = create_server_app()
    if not app.config["PORTAL"]["JOB_QUEUE_URL"]:
        print("campus-portal-server: PORTAL_JOB_QUEUE_URL is not set", file=sys.stderr)
        return 2
    jobs.work(app, burst=burst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
