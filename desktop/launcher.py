"""`campus-portal`: the portal from the user's own data directory, in a window or headless.

    campus-portal [--version] [--headless] [--demo] [--data-dir DIR] [--port N] [--verbose]
                  [--idle-logout MINUTES]
    campus-portal [--data-dir DIR | --demo] backup [--to FILE]
    campus-portal [--data-dir DIR | --demo] restore FILE
    campus-portal [--data-dir DIR] enrol --server URL --code CODE
    campus-portal [--data-dir DIR] sync [--export FILE]
    campus-portal [--data-dir DIR | --demo] open

Start-up, in order: with a window, the window's process starts first (it loads GTK and WebKit
meanwhile: desktop/window_process.py) -> data directory writable -> single-instance lock ->
database file usable (not locked by another program, not damaged) -> waitress on 127.0.0.1
behind the local guard, the portal built (and the schema upgraded, backed up first) in the
background while the window opens (desktop/starting.py) -> the window shows the launch URL (or,
headless, one line on stdout with it once /healthz answers) -> daily backup and (when connected
to a campus server) sync in the background. Closing the window, SIGTERM or SIGINT stop the sync
between two batches, stop the server gracefully and checkpoint the WAL; a window process that
ends in any other way stops the launcher the same way, and a launcher that ends closes its
window.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
import time
import typing
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from desktop import APP_NAME, APP_TITLE
from desktop.i18n import _
from desktop.problems import (
    EXIT_OK,
    EXIT_USAGE,
    AlreadyRunning,
    DatabaseProblem,
    DataDirProblem,
    LauncherProblem,
    NotRunning,
    SettingsProblem,
)

if TYPE_CHECKING:  # the launcher imports its parts when it needs them (start-up time)
    from flask import Flask

    from desktop.guard import LocalGuard
    from desktop.paths import DataPaths
    from desktop.starting import PortalBuild
    from desktop.window_process import WindowProcess

log = logging.getLogger("desktop")


class _VersionAction(argparse.Action):
    """--version, reading the version only when asked (a start does not wait for it)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from portal import __version__

        print(f"{APP_TITLE} {__version__}")
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a wrong command line, which is the data folder's exit code here: a
    usage error has its own (EXIT_USAGE, as sysexits' EX_USAGE). Its commands' parsers too."""

    def error(self, message: str) -> typing.NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=APP_NAME,
        description="Campus Portal: the university portal on this computer, online or offline.",
    )
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    parser.add_argument("--headless", action="store_true", help="serve without opening a window")
    parser.add_argument(
        "--demo", action="store_true", help="use a separate data folder holding demo data"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, metavar="DIR", help="where the database lives"
    )
    parser.add_argument(
        "--port", type=int, default=0, metavar="N", help="port on 127.0.0.1 (0: a free one)"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log to stderr as well")
    parser.add_argument(
        "--idle-logout",
        type=int,
        default=None,
        metavar="MINUTES",
        help="log the portal user out after this many idle minutes (0: never)",
    )
    # The data options may also follow the command: `campus-portal backup --data-dir DIR`.
    shared = _Parser(add_help=False)
    shared.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, metavar="DIR")
    shared.add_argument("--demo", action="store_true", default=argparse.SUPPRESS)
    shared.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    backup = commands.add_parser(
        "backup", parents=[shared], help="copy the database to a backup file"
    )
    backup.add_argument(
        "--to",
        type=Path,
        default=None,
        metavar="FILE",
        help="backup file or folder (default: <data dir>/backups/manual/)",
    )
    restore = commands.add_parser(
        "restore", parents=[shared], help="replace the database with a backup"
    )
    restore.add_argument("file", type=Path, metavar="FILE", help="a backup made by Campus Portal")
    enrol = commands.add_parser(
        "enrol", parents=[shared], help="connect this data folder to the campus server"
    )
    enrol.add_argument("--server", required=True, metavar="URL", help="the campus server")
    enrol.add_argument("--code", required=True, metavar="CODE", help="enrolment code from IT")
    enrol.add_argument(
        "--name",
        default=None,
        help="how this copy is named on the server's Devices page (default: USER@COMPUTER)",
    )
    sync = commands.add_parser(
        "sync", parents=[shared], help="synchronise once with the campus server"
    )
    sync.add_argument(
        "--export",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the changes waiting on this computer to FILE (JSON) instead",
    )
    commands.add_parser(
        "open",
        parents=[shared],
        help="print a new one-time link to the Campus Portal running on this data folder",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    # Start-up creates many long-lived objects (modules, the app, the ORM mappings) and no
    # garbage worth a collection: the collector waits until the portal answers (run_portal).
    gc.disable()
    try:
        code = _main(argv)
    finally:
        gc.enable()
    return code


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    # A start with a window starts the window's process first of all: it loads GTK and WebKit
    # while this one checks the data folder, takes the lock and builds the portal. A second
    # start (the lock is taken) or a problem closes it again before it showed anything.
    window = _start_window_process(args) if args.command is None else None
    try:
        return _run_command(args, window)
    finally:
        if window is not None:
            _close_window_process(window)


def _run_command(args: argparse.Namespace, window: WindowProcess | None) -> int:
    from desktop.logs import setup_logging
    from desktop.paths import keep_private, resolve

    keep_private()  # everything written from here on is the OS user's alone (600/700)
    paths = resolve(args.data_dir, demo=args.demo)
    # `open` only asks a running portal: a data folder that does not exist is not created
    # (its logs would be), it is reported (run_open).
    log_file = None
    if args.command != "open" or paths.data_dir.is_dir():
        log_file = setup_logging(paths.log_file, verbose=args.verbose)
    try:
        if args.command == "backup":
            return run_backup(paths, args)
        if args.command == "restore":
            return run_restore(paths, args)
        if args.command == "enrol":
            return run_enrol(paths, args, log_file)
        if args.command == "sync":
            return run_sync(paths, args, log_file)
        if args.command == "open":
            return run_open(paths)
        return run_portal(paths, args, log_file, window)
    except LauncherProblem as problem:
        if log_file is not None:
            log.error("%s", problem.text())
        print(f"Campus Portal: {problem.text()}", file=sys.stderr, flush=True)
        if window is not None:  # not needed any more: the problem has a window of its own
            _close_window_process(window)
        if args.command is None and not args.headless and not problem.shown_in_window:
            from desktop.window import show_problem

            show_problem(problem.title, problem.text())
        return problem.exit_code


# --- backup and restore ------------------------------------------------------------------------


def run_backup(paths: DataPaths, args: argparse.Namespace) -> int:
    import sqlite3

    from desktop import backups

    target: Path = args.to or paths.backups_dir / "manual"
    if target.is_dir() or args.to is None:
        target = target / f"portal-{backups.stamp()}.db"
    try:
        written = backups.online_backup(paths.database, target.expanduser().resolve())
    except sqlite3.Error as exc:
        raise DatabaseProblem(
            _("The backup failed"),
            _(
                "%(database)s could not be copied (%(exc)s). Nothing was changed.",
                database=paths.database,
                exc=exc,
            ),
            backups=backups.list_backups(paths),
        ) from exc
    except OSError as exc:
        raise DataDirProblem(
            _("The backup could not be written"), f"{target}: {exc.strerror or exc}"
        ) from exc
    print(f"Backup written to {written}")
    return EXIT_OK


def run_restore(paths: DataPaths, args: argparse.Namespace) -> int:
    from desktop import backups
    from desktop.database import check_data_dir
    from desktop.instance import InstanceLock, read_info

    check_data_dir(paths)
    lock = InstanceLock(paths.lock_file)
    if not lock.acquire():
        info = read_info(paths.instance_file)
        running = f" (process {info.pid})" if info else ""
        raise AlreadyRunning(
            _("Close Campus Portal first"),
            _(
                "Campus Portal is running on %(data_dir)s%(running)s; a database in use cannot "
                "be replaced. Close its window (or stop it) and run the restore again.",
                data_dir=paths.data_dir,
                running=running,
            ),
        )
    try:
        restored, kept = backups.restore(paths, args.file)
    finally:
        lock.release()
    print(f"Restored {args.file} into {restored}.")
    if kept is not None:
        print(f"The database it replaced was kept at {kept}.")
    return EXIT_OK


# --- sync from a shell ------------------------------------------------------------------------


def _sync_app(paths: DataPaths, args: argparse.Namespace, log_file: Path | None) -> Any:
    """The portal over this data folder's database, created or upgraded first (the app may
    be open on the same folder: SQLite's write lock keeps the two apart)."""
    from desktop.database import check_data_dir, migrate

    check_data_dir(paths)
    app = _create_app(paths, args, log_file)
    migrate(app, paths)
    return app


def run_enrol(paths: DataPaths, args: argparse.Namespace, log_file: Path | None) -> int:
    from desktop.problems import SyncProblem
    from portal.extensions import db
    from portal.sync.device import client as sync_client
    from portal.sync.device import runner as sync_runner

    app = _sync_app(paths, args, log_file)
    with app.app_context():
        engine = db.engine
    try:
        http = sync_client.http_client(app.config["PORTAL"]["CA_FILE"])
        username = sync_client.enrol(
            engine,
            args.server,
            args.code,
            device_name=(args.name or "").strip() or sync_client.default_device_name(),
            client=http,
        )
        print(f"Enrolled with {args.server} for {username}; first sync...", flush=True)
        summary = sync_runner.sync_once(
            engine, Path(app.config["PORTAL"]["UPLOAD_DIR"]), client=http
        )
    except sync_client.SyncError as error:
        raise SyncProblem(
            _("Enrolment did not complete"), _with_waiting(str(error), error, engine), error.reason
        ) from None
    print(f"Synced: {summary.line()}")
    return EXIT_OK


def run_sync(paths: DataPaths, args: argparse.Namespace, log_file: Path | None) -> int:
    from desktop.problems import SyncProblem
    from portal.extensions import db
    from portal.sync.device import client as sync_client
    from portal.sync.device import outbox
    from portal.sync.device import runner as sync_runner

    app = _sync_app(paths, args, log_file)
    with app.app_context():
        engine = db.engine
    if args.export is not None:
        count = outbox.export_outbox(engine, args.export)
        print(f"{count} waiting change(s) written to {args.export}")
        return EXIT_OK
    try:
        http = sync_client.http_client(app.config["PORTAL"]["CA_FILE"])
        summary = sync_runner.sync_once(
            engine, Path(app.config["PORTAL"]["UPLOAD_DIR"]), client=http
        )
    except sync_client.SyncError as error:
        raise SyncProblem(
            _("Sync did not complete"), _with_waiting(str(error), error, engine), error.reason
        ) from None
    print(f"Synced: {summary.line()}")
    return EXIT_OK


def _with_waiting(message: str, error: Any, engine: Any) -> str:
    """The failure's message, and what becomes of the changes waiting on this computer when
    some wait (said only then)."""
    from portal.sync.device import client as sync_client

    waiting = sync_client.pending_count(engine)
    if not waiting or error.reason == "protocol":  # a refused protocol says it itself
        return message
    kept = f"{message} {waiting} change(s) waiting on this computer are kept"
    if error.reason in ("unreachable", "busy"):
        return f"{kept} and will be sent at the next sync."
    return f"{kept}."


# --- a way back in ------------------------------------------------------------------------------


def run_open(paths: DataPaths) -> int:
    """Print a fresh one-time launch URL of the portal running on this data folder.

    Only the OS user who runs it can ask: the control key is in the owner-only instance file."""
    from desktop.instance import InstanceLock, ask_for_launch_url, read_info

    if not paths.data_dir.is_dir():
        raise NotRunning(
            _("No such data folder"),
            _(
                "%(data_dir)s does not exist (or is not a folder), so no Campus Portal runs on "
                "it. Check the --data-dir path (and --demo); nothing was created.",
                data_dir=paths.data_dir,
            ),
        )
    lock = InstanceLock(paths.lock_file) if paths.lock_file.exists() else None
    if lock is not None and not lock.acquire():
        info = read_info(paths.instance_file)
        url = ask_for_launch_url(info) if info is not None else None
        if url is None:
            raise AlreadyRunning(
                _("No link could be had"),
                _(
                    "Campus Portal is running on %(data_dir)s, but it did not answer (is it still "
                    "starting?), or its instance file belongs to another OS user. Try again in a "
                    "moment.",
                    data_dir=paths.data_dir,
                ),
            )
        print(url, flush=True)
        return EXIT_OK
    if lock is not None:
        lock.release()
    raise NotRunning(
        _("Campus Portal is not running"),
        _(
            "Nothing is running on %(data_dir)s. Start it with `campus-portal --headless` "
            "(it prints a link) or from its icon.",
            data_dir=paths.data_dir,
        ),
    )


# --- serving ---------------------------------------------------------------------------------


class Shutdown:
    """SIGTERM, SIGINT (and SIGHUP) ask for a clean stop, whichever loop is running."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.window: WindowProcess | None = None

    def install(self) -> None:
        signals = [signal.SIGTERM, signal.SIGINT]
        if hasattr(signal, "SIGHUP"):
            signals.append(signal.SIGHUP)
        for number in signals:
            signal.signal(number, self._handle)

    def _handle(self, number: int, _frame: FrameType | None) -> None:
        log.info("signal %s received: shutting down", signal.Signals(number).name)
        self.requested.set()
        if self.window is not None:
            self.window.close()

    def wait(self) -> None:
        while not self.requested.wait(1.0):
            pass


def _create_app(paths: DataPaths, args: argparse.Namespace, log_file: Path | None) -> Flask:
    from portal import create_app
    from portal.config import ConfigError

    overrides: dict[str, Any] = {
        "MODE": "desktop",
        "DATA_DIR": str(paths.data_dir),
        "DATABASE_URL": f"sqlite:///{paths.database}",
    }
    if args.idle_logout is not None:
        if args.idle_logout < 0:
            raise SettingsProblem(
                _("Invalid --idle-logout"), _("use 0 (never) or a number of minutes")
            )
        overrides["IDLE_LOGOUT_MINUTES"] = args.idle_logout
    try:
        app = create_app(overrides)
    except ConfigError as exc:
        raise SettingsProblem(_("A setting cannot be used"), str(exc)) from exc
    # The portal's error page names the log file (never a stack trace).
    app.config["LOG_FILE"] = str(log_file) if log_file else ""
    from desktop.template_cache import cache_compiled_templates

    cache_compiled_templates(app, paths.template_cache_dir)
    return app


def _load_demo_data(app: Flask) -> None:
    """Fill an empty demo folder with the small demo data; name only accounts that exist."""
    from portal.demo.services import DEMO_PASSWORD, existing_demo_accounts, generate
    from portal.extensions import db

    with app.app_context():
        has_users = db.session.execute(db.text("SELECT 1 FROM users LIMIT 1")).first()
        if not has_users:
            generate(db.session(), "small", upload_dir=Path(app.config["PORTAL"]["UPLOAD_DIR"]))
            db.session.commit()
            log.info("demo data loaded")
        accounts = existing_demo_accounts(db.session())
        db.session.remove()
    if accounts:
        message = f"Demo accounts: {', '.join(accounts)} (password {DEMO_PASSWORD})"
    else:
        message = "This demo folder holds other data than the demo: no demo accounts to list"
    print(message, file=sys.stderr, flush=True)


def _daily_backups(
    paths: DataPaths, keep: int, stop: threading.Event, build: PortalBuild[Flask]
) -> None:
    from desktop import backups

    try:
        build.wait()  # never copy a database while its schema is being upgraded
    except LauncherProblem:
        return
    while True:
        try:
            backups.daily_backup(paths, keep=keep)
        except Exception:  # a failed backup is logged; the portal keeps serving
            log.exception("daily backup failed")
        if stop.wait(3600):
            return


def _second_start(paths: DataPaths) -> int:
    from desktop.instance import ask_for_launch_url, ask_to_focus, read_info

    info = read_info(paths.instance_file)
    if info is not None and info.window and ask_to_focus(info):
        print(
            f"Campus Portal is already open for {paths.data_dir} (process {info.pid}); "
            "its window was brought to the front.",
            file=sys.stderr,
        )
        return EXIT_OK
    url = ask_for_launch_url(info) if info is not None else None
    if info is not None and url is not None:
        raise AlreadyRunning(
            _("Campus Portal is already running"),
            _(
                "%(data_dir)s is already served by process %(pid)s. Open it with this link (it "
                "works once; `campus-portal open` prints a new one):\n  %(url)s",
                data_dir=paths.data_dir,
                pid=info.pid,
                url=url,
            ),
        )
    where = f" by process {info.pid}" if info else ""
    raise AlreadyRunning(
        _("Campus Portal is already running"),
        _(
            "%(data_dir)s is already served%(where)s. Only one Campus Portal may use a data "
            "folder at a time; use that one (`campus-portal open` prints a link to it), or "
            "stop it first (close its window, Ctrl+C or SIGTERM).",
            data_dir=paths.data_dir,
            where=where,
        ),
    )


def _build_portal(
    paths: DataPaths,
    args: argparse.Namespace,
    log_file: Path | None,
    started: float,
    guard: LocalGuard | None = None,
) -> Flask:
    """The portal's WSGI app over an up-to-date database (runs in the build thread)."""
    from desktop.database import migrate

    app = _create_app(paths, args, log_file)
    migrate(app, paths)
    if args.demo:
        _load_demo_data(app)
    _start_background_sync(app)
    if guard is not None:
        _start_update_check(app, paths, guard)
    log.info("portal built %.3fs after the start", time.monotonic() - started)
    gc.freeze()  # what start-up built lives as long as the process: later passes skip it
    gc.enable()
    return app


def _start_background_sync(app: Any) -> None:
    """Sync every few minutes while the campus server answers (nothing happens while this
    copy is not connected to one); stopped by _stop_background_sync at shutdown."""
    from portal.sync.device.runner import runner_for

    runner_for(app).start_background()


def _start_update_check(app: Any, paths: DataPaths, guard: LocalGuard) -> None:
    """At most once a day, while no sync runs and nobody has used the portal for a while
    (desktop/updates.py); no thread and no request when IT turned updates off or pinned them."""
    from desktop.updates import QUIET_SECONDS, UpdateCheck, UpdateSettings
    from portal import __version__
    from portal.sync.device.runner import runner_for

    check = UpdateCheck(
        UpdateSettings.from_portal(app.config["PORTAL"]),
        data_dir=paths.data_dir,
        running_version=__version__,
    )
    app.config["UPDATE_STATUS"] = check.page
    app.extensions["update_check"] = check
    runner = runner_for(app)
    check.start_background(lambda: not runner.busy and guard.idle_seconds() >= QUIET_SECONDS)


def _install_update_at_exit(app: Any) -> None:
    """A verified update is handed to the OS's installer once everything is closed."""
    check = app.extensions.get("update_check")
    if check is None:
        return
    check.stop()
    try:
        check.install_at_exit()
    except Exception:
        log.exception("handing the update to the installer failed")


def _stop_background_sync(app: Any) -> None:
    """A running sync stops between two batches (each written atomically); wait for it."""
    from portal.sync.device.runner import runner_for

    try:
        runner_for(app).stop()
    except Exception:
        log.exception("stopping the background sync failed")


def run_portal(
    paths: DataPaths,
    args: argparse.Namespace,
    log_file: Path | None,
    window: WindowProcess | None = None,
) -> int:
    """Serve the portal until the window closes (`window`: its process, already started) or,
    headless, until SIGTERM or SIGINT."""
    from desktop.database import check_data_dir, check_database_file, checkpoint
    from desktop.guard import LocalGuard
    from desktop.instance import InstanceInfo, InstanceLock, remove_info, write_info
    from desktop.server import EmbeddedServer, ServerNotReady, wait_until_healthy
    from desktop.settings import load_desktop_settings
    from desktop.starting import PortalBuild

    started = time.monotonic()
    shutdown = Shutdown()
    shutdown.install()
    warnings = check_data_dir(paths)
    from portal import __version__

    log.info("%s %s starting on %s", APP_TITLE, __version__, paths.data_dir)
    for warning in warnings:
        log.warning("%s", warning)
        print(f"Campus Portal: warning: {warning}", file=sys.stderr, flush=True)

    lock = InstanceLock(paths.lock_file)
    try:
        acquired = lock.acquire()
    except OSError as exc:
        raise DataDirProblem(_("Cannot create the lock file"), f"{paths.lock_file}: {exc}") from exc
    if not acquired:
        return _second_start(paths)

    if window is not None:
        log.info("window process %s started", window.pid)
    server: EmbeddedServer | None = None
    build: PortalBuild[Flask] | None = None
    backup_stop = threading.Event()
    try:
        settings = load_desktop_settings()
        check_database_file(paths)
        # The portal is built in the background while the server listens and the window
        # opens (desktop/starting.py); requests made meanwhile wait for it.
        build = PortalBuild(lambda: _build_portal(paths, args, log_file, started, guard))
        guard = LocalGuard(build)
        try:
            server = EmbeddedServer(guard, port=args.port)
        except OSError as exc:
            raise LauncherProblem(
                _("The local server cannot start"),
                _(
                    "%(address)s cannot be used (%(reason)s). Leave out --port to use a free one.",
                    address="127.0.0.1:" + str(args.port),
                    reason=exc.strerror or exc,
                ),
            ) from exc
        guard.port = server.port
        guard.isolate_from_other_sites = window is None
        build.start()
        server.start()

        if window is not None:
            from desktop.window import page_reports_requested

            window.open(
                guard.issue_launch_url(),
                title=f"{APP_TITLE} (demo)" if args.demo else APP_TITLE,
                state_file=paths.window_state_file,
                report_pages=page_reports_requested(),
            )
        with_window = window is not None
        if not with_window:
            build.wait()  # a problem is raised here, before anything is announced
            try:
                wait_until_healthy(server.port, guard.cookie_header())
            except ServerNotReady as exc:
                raise LauncherProblem(_("The local server did not start"), str(exc)) from exc
            log.info("ready on port %s after %.3fs", server.port, time.monotonic() - started)
        write_info(
            paths.instance_file,
            InstanceInfo(
                pid=os.getpid(), port=server.port, window=with_window, control_key=guard.control_key
            ),
        )
        if settings.daily_backup:
            threading.Thread(
                target=_daily_backups,
                args=(paths, settings.backups_to_keep, backup_stop, build),
                name="daily-backup",
                daemon=True,
            ).start()

        if window is not None and not shutdown.requested.is_set():
            with_window = _run_window(window, guard, shutdown)
            if not with_window:  # served headless after all: a second start asks for a link
                guard.isolate_from_other_sites = True
                write_info(
                    paths.instance_file,
                    InstanceInfo(
                        pid=os.getpid(),
                        port=server.port,
                        window=False,
                        control_key=guard.control_key,
                    ),
                )
            if with_window and build.problem is not None:
                # The window showed the problem; the exit code and the terminal tell it too.
                build.problem.shown_in_window = True
                raise build.problem
        if not with_window and not shutdown.requested.is_set():
            build.wait()
            print(f"{APP_TITLE} running at {guard.issue_launch_url()}", flush=True)
            shutdown.wait()
        return EXIT_OK
    finally:
        backup_stop.set()
        if window is not None:
            _close_window_process(window)
        if server is not None:
            server.stop()
        if build is not None:
            if not build.done:
                log.info("waiting for the portal's start (a schema upgrade?) to finish first")
            build.join()  # a schema upgrade in progress ends (commits or rolls back) first
            if build.app is not None:
                _stop_background_sync(build.app)
                _dispose_engine(build.app)
                try:
                    checkpoint(paths.database)
                except Exception:
                    log.exception("WAL checkpoint at shutdown failed")
        remove_info(paths.instance_file)
        lock.release()
        if build is not None and build.app is not None:
            _install_update_at_exit(build.app)
        log.info("stopped")


def _start_window_process(args: argparse.Namespace) -> WindowProcess | None:
    """The window's process, started; None when serving headless (asked, or no display)."""
    if args.headless:
        return None
    from desktop.window import display_missing

    missing = display_missing()
    if missing is not None:
        _say_headless_instead(missing)
        return None
    from desktop.window_process import WindowProcess

    window = WindowProcess()
    try:
        window.start()
    except OSError as exc:
        _say_headless_instead(f"its process could not be started ({exc})")
        return None
    return window


def _say_headless_instead(reason: str) -> None:
    print(
        f"Campus Portal: cannot open a window: {reason}. "
        "Running headless instead (use --headless to silence this).",
        file=sys.stderr,
        flush=True,
    )


def _run_window(window: WindowProcess, guard: LocalGuard, shutdown: Shutdown) -> bool:
    """Wait until the window is closed (or its process ends); False if it could not be
    opened at all (then the portal is served headless)."""
    guard.on_focus = window.focus
    shutdown.window = window
    try:
        if shutdown.requested.is_set():  # a signal came before shutdown.window was set
            window.close()
        while not window.wait(1.0):
            pass
    finally:
        shutdown.window = None
        guard.on_focus = None
    if window.problem is not None:
        _say_headless_instead(window.problem)
        return False
    if window.closed_by_user:
        log.info("window closed")
    else:
        log.warning(
            "the window's process ended (exit code %s) without its window being closed: stopping",
            window.returncode,
        )
    return True


def _close_window_process(window: WindowProcess, timeout: float = 10.0) -> None:
    """At shutdown: the window closes (if still open), its process ends, or is ended."""
    window.close()
    if not window.wait(timeout):
        log.warning("the window's process did not end within %.0fs: ending it", timeout)
        window.kill()


def _dispose_engine(app: Flask) -> None:
    from portal.extensions import db

    try:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    except Exception:
        log.exception("closing the database connections failed")


if __name__ == "__main__":
    sys.exit(main())
