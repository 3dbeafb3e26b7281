"""The launcher from the outside: its one line, clean stops, migrations, demo, single instance."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from portal import __version__
from tests.desktop.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    log_in,
    mark_from_a_newer_version,
)
from tests.desktop.launcher_process import Launcher, PortalClient, launcher_env, run_cli


def dump(database: Path, *, immutable: bool = False) -> list[str]:
    """The logical content of a database (its file bytes change when SQLite checkpoints)."""
    target = f"{database.as_uri()}?mode=ro&immutable=1" if immutable else str(database)
    with closing(sqlite3.connect(target, uri=immutable)) as connection:
        return list(connection.iterdump())


def _revision(database: Path) -> str:
    with closing(sqlite3.connect(database)) as connection:
        return connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"Campus Portal {__version__}"


def test_help_lists_the_stable_cli():
    result = run_cli("--help")
    for option in ("--version", "--headless", "--demo", "--data-dir", "--port", "--verbose"):
        assert option in result.stdout
    assert "backup" in result.stdout and "restore" in result.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["--port", "eighty"], "argument --port: invalid int value: 'eighty'"),
        (["enrol", "--server", "https://portal.example"], "required: --code"),
        (["sync", "--export"], "argument --export: expected one argument"),
        (["no-such-command"], "invalid choice: 'no-such-command'"),
    ],
)
def test_a_wrong_command_line_has_an_exit_code_of_its_own(tmp_path, args, said):
    """Not 2 (argparse's), which says the data folder is read-only or the disk full."""
    data = tmp_path / "data"
    result = run_cli("--data-dir", str(data), *args)
    assert result.returncode == 64, result.stderr
    assert result.stderr.startswith("usage: campus-portal")
    assert said in result.stderr
    assert result.stdout == ""
    assert not data.exists()  # nothing was started, nothing created


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_headless_prints_one_line_and_stops_cleanly(start_launcher, tmp_path, sig):
    launcher = start_launcher()
    assert launcher.launch_path.startswith("/launch/")
    client = launcher.client()
    assert client.get("/healthz").status == 200
    code, rest_of_stdout, stderr = launcher.stop(sig)
    assert code == 0, stderr
    assert rest_of_stdout == ""  # exactly one line in all
    data = tmp_path / "data"
    wal = data / "portal.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed
    assert not (data / "campus-portal.instance").exists()
    log = (data / "logs" / "campus-portal.log").read_text()
    assert "server stopped" in log and "WAL checkpoint" in log
    assert launcher.launch_path.split("/")[-1] not in log  # the token is never logged


def test_first_run_shows_the_setup_page(start_launcher):
    launcher = start_launcher()
    page = launcher.client().follow("/")
    assert page.status == 200
    assert "Create the first administrator" in page.text


def test_the_launch_link_leads_to_the_first_page_in_one_hop(
    start_launcher, admin_data_dir, tmp_path
):
    """The launch answer redirects straight to the page the person lands on (no detour through
    `/`), and that page answers at once: the first-run page, then the log-in page."""
    for data_dir, path, text in (
        (tmp_path / "fresh", "/setup/", "Create the first administrator"),
        (admin_data_dir, "/login", "Log in to Campus Portal"),
    ):
        launcher = start_launcher(data_dir)
        client = PortalClient(launcher.port)
        answer = client.exchange(launcher.launch_path)
        assert answer.status == 303 and answer.location == path
        page = client.get(path)
        assert page.status == 200 and text in page.text
        assert launcher.stop()[0] == 0


def test_verbose_logs_to_stderr_too(start_launcher):
    launcher = start_launcher(None, "--verbose")
    launcher.client().get("/healthz")
    code, _, stderr = launcher.stop()
    assert code == 0
    assert "portal.requests: GET /healthz 200" in stderr
    assert "Campus Portal running" not in stderr


def test_fixed_port(start_launcher, tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launcher = start_launcher(None, "--port", str(port))
    assert launcher.port == port
    second = run_cli("--headless", "--data-dir", str(tmp_path / "other"), "--port", str(port))
    assert second.returncode != 0
    assert f"127.0.0.1:{port} cannot be used" in second.stderr


def test_no_display_falls_back_to_headless(tmp_path):
    launcher = Launcher(tmp_path / "data", headless=False).start()
    try:
        assert launcher.client().get("/healthz").status == 200
    finally:
        code, _, stderr = launcher.stop()
    assert code == 0
    assert "cannot open a window: no display is available" in stderr
    assert "Running headless instead" in stderr


def test_a_display_that_cannot_be_opened_falls_back_to_headless(tmp_path):
    """DISPLAY names no X server: the window's process finds out (it opens the display) and
    tells the launcher, which serves headless, and a second start asks it for a link."""
    env = launcher_env(DISPLAY=":4095")  # no such display
    launcher = Launcher(tmp_path / "data", headless=False, env=env).start()
    try:
        assert launcher.client().get("/healthz").status == 200
        info = json.loads((tmp_path / "data" / "campus-portal.instance").read_text())
        assert info["window"] is False
        second = run_cli("--data-dir", str(tmp_path / "data"), env=env)
        assert second.returncode == 1 and "/launch/" in second.stderr
    finally:
        code, _, stderr = launcher.stop()
    assert code == 0, stderr
    assert "cannot open a window:" in stderr and "Running headless instead" in stderr
    assert "Traceback" not in stderr


def test_second_start_is_refused_while_the_first_serves(start_launcher, tmp_path):
    first = start_launcher()
    client = first.client()
    second = run_cli("--headless", "--data-dir", str(tmp_path / "data"))
    assert second.returncode == 1
    assert "already running" in second.stderr
    assert f"process {first.process.pid}" in second.stderr
    assert second.stdout == ""
    assert client.get("/healthz").status == 200
    # What it prints works: a fresh one-time link into the running portal.
    [link] = re.findall(rf"http://127\.0\.0\.1:{first.port}/launch/\S+", second.stderr)
    browser = PortalClient(first.port)
    assert browser.exchange(link.split(str(first.port), 1)[1]).status == 303
    assert browser.get("/healthz").status == 200


def test_open_prints_a_fresh_link_for_a_headless_portal(start_launcher, tmp_path):
    """The launch link works once and the cookie dies with the browser: `open` gets back in."""
    first = start_launcher()
    browser = first.client()  # the printed link, used once
    assert browser.exchange(first.launch_path).status == 403  # not twice
    result = run_cli("open", "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    link = result.stdout.strip()
    assert re.fullmatch(rf"http://127\.0\.0\.1:{first.port}/launch/[\w-]{{20,}}", link)
    fresh = PortalClient(first.port)
    path = link.split(str(first.port), 1)[1]
    assert fresh.exchange(path).status == 303
    assert fresh.get("/healthz").status == 200
    assert PortalClient(first.port).exchange(path).status == 403  # it too works once
    # The refusal page says how to get back in.
    assert "campus-portal open" in PortalClient(first.port).get("/").text


def test_open_without_a_running_portal_says_so(tmp_path):
    (tmp_path / "nothing").mkdir()
    result = run_cli("open", "--data-dir", str(tmp_path / "nothing"))
    assert result.returncode == 5
    assert "Campus Portal is not running" in result.stderr
    assert result.stdout == ""


def test_open_needs_the_owner_only_instance_file(start_launcher, tmp_path):
    """The control key is the only way to a link: without it the running portal refuses."""
    first = start_launcher()
    refused = PortalClient(first.port).post("/.campus-portal/launch-url", {})
    assert refused.status == 403
    instance = tmp_path / "data" / "campus-portal.instance"
    assert stat.S_IMODE(instance.stat().st_mode) == 0o600


def test_a_killed_launcher_does_not_block_the_next_start(start_launcher, tmp_path):
    first = start_launcher()
    first.kill()
    second = start_launcher()
    assert second.client().get("/healthz").status == 200


def test_migration_takes_a_backup_first(start_launcher, tmp_path, monkeypatch):
    from flask_migrate import upgrade

    from portal import MIGRATIONS_DIR, create_app

    data = tmp_path / "data"
    old = create_app({"DATA_DIR": str(data), "SECRET_KEY": "k" * 32})
    with old.app_context():
        upgrade(directory=str(MIGRATIONS_DIR), revision="0001")
        from portal.extensions import db

        db.engine.dispose()
    assert _revision(data / "portal.db") == "0001"

    launcher = start_launcher()
    assert launcher.client().get("/healthz").status == 200
    backups = list((data / "backups" / "pre-migration").glob("portal-0001-*.db"))
    assert len(backups) == 1
    assert _revision(backups[0]) == "0001"
    assert _revision(data / "portal.db") != "0001"
    launcher.stop()

    again = start_launcher()  # already at the newest revision: no second backup
    again.stop()
    assert len(list((data / "backups" / "pre-migration").glob("*.db"))) == 1


def test_a_database_from_a_newer_version_is_refused(admin_data_dir):
    database = admin_data_dir / "portal.db"
    mark_from_a_newer_version(admin_data_dir)
    before = dump(database)
    result = run_cli("--headless", "--data-dir", str(admin_data_dir))
    assert result.returncode == 3
    assert "newer Campus Portal" in result.stderr
    assert result.stdout == ""
    assert dump(database) == before


def test_demo_uses_its_own_data_dir(tmp_path):
    base = tmp_path / "base"
    env = launcher_env(PORTAL_DATA_DIR=str(base))
    launcher = Launcher(None, "--demo", env=env, work_dir=tmp_path).start()
    try:
        client = launcher.client()
        log_in(client, "admin", "demo-pass")
        assert client.get("/admin/users/").status == 200
    finally:
        code, _, stderr = launcher.stop()
    assert code == 0
    assert "Demo accounts: admin" in stderr
    assert (base / "demo" / "portal.db").exists()
    assert not (base / "portal.db").exists()
    assert (base / "demo" / "logs" / "campus-portal.log").exists()


def test_demo_with_a_data_dir_holding_real_data_uses_its_demo_folder(admin_data_dir):
    """--demo next to real data: the demo goes to DIR/demo, and the real data is left alone."""
    before = dump(admin_data_dir / "portal.db")
    launcher = Launcher(admin_data_dir, "--demo").start()
    try:
        client = launcher.client()
        log_in(client, "student", "demo-pass")
        assert client.get("/grades").status == 200
    finally:
        code, _, stderr = launcher.stop()
    assert code == 0
    assert "Demo accounts: admin, instructor, labstaff, student (password demo-pass)" in stderr
    assert (admin_data_dir / "demo" / "portal.db").exists()
    assert dump(admin_data_dir / "portal.db") == before


def test_demo_folder_holding_other_data_lists_no_accounts(admin_data_dir, tmp_path):
    """A demo folder that holds real data (no demo accounts) is not presented as a demo."""
    import shutil

    shutil.copytree(admin_data_dir, tmp_path / "base" / "demo")
    launcher = Launcher(tmp_path / "base", "--demo").start()
    try:
        client = launcher.client()
        log_in(client, ADMIN_USERNAME, ADMIN_PASSWORD)
    finally:
        code, _, stderr = launcher.stop()
    assert code == 0
    assert "Demo accounts" not in stderr
    assert "holds other data than the demo: no demo accounts to list" in stderr


def test_data_dir_from_the_environment(tmp_path):
    base = tmp_path / "from-env"
    launcher = Launcher(None, env=launcher_env(PORTAL_DATA_DIR=str(base)), work_dir=tmp_path)
    launcher.start()
    launcher.stop()
    assert (base / "portal.db").exists()


def test_admin_can_work_after_restart(start_launcher, admin_data_dir):
    launcher = start_launcher(admin_data_dir)
    client = launcher.client()
    log_in(client)
    assert ADMIN_USERNAME in client.get("/admin/users/").text


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_the_data_folder_is_the_os_users_alone(tmp_path):
    """Folder 700 and files 600 (uploads, the database, logs), also for a folder made earlier
    with open modes."""
    base = tmp_path / "base"
    (base / "demo").mkdir(parents=True)
    base.chmod(0o755)
    (base / "demo").chmod(0o755)
    earlier = base / "demo" / "notes.txt"
    earlier.write_text("made by an older version")
    earlier.chmod(0o644)
    launcher = Launcher(base, "--demo").start()
    try:
        client = launcher.client()
        log_in(client, "student", "demo-pass")
        assert client.get("/lab-reports").status == 200
    finally:
        code, _, _ = launcher.stop()
    assert code == 0
    data = base / "demo"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    checked = []
    for root, folders, files in os.walk(data):
        for name in folders:
            assert stat.S_IMODE((Path(root) / name).stat().st_mode) == 0o700, name
        for name in files:
            mode = stat.S_IMODE((Path(root) / name).stat().st_mode)
            assert mode & 0o077 == 0, f"{name}: {oct(mode)}"
            checked.append(name)
    assert {"portal.db", "secret_key", "notes.txt", "campus-portal.log"} <= set(checked)
    assert any(len(name) == 64 for name in checked)  # an uploaded lab report in the store


def test_open_with_a_data_folder_that_does_not_exist_refuses_and_creates_nothing(tmp_path):
    missing = tmp_path / "mistyped" / "folder"
    result = run_cli("open", "--data-dir", str(missing))
    assert result.returncode == 5
    assert "No such data folder" in result.stderr
    assert f"{missing} does not exist" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "mistyped").exists()
    # With --demo, the demo folder inside an existing one is looked for, and not made either.
    result = run_cli("open", "--demo", "--data-dir", str(tmp_path))
    assert result.returncode == 5
    assert f"{tmp_path / 'demo'} does not exist" in result.stderr
    assert list(tmp_path.iterdir()) == []
