"""The launcher's parts one by one: guard, paths, resources, settings, backups, window state."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from werkzeug.test import Client

from desktop import backups, paths, resources
from desktop.guard import COOKIE_NAME, LocalGuard
from desktop.problems import SettingsProblem
from desktop.settings import DesktopSettings, load_desktop_settings
from desktop.window import MIN_SIZE, WindowState
from portal.auth.policy import public
from tests.conftest import make_app

# --- the guard, in front of a tiny WSGI app ------------------------------------------------------


def _hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


@pytest.fixture
def guard() -> LocalGuard:
    guard = LocalGuard(_hello)
    guard.port = 41234
    return guard


HOST = {"HTTP_HOST": "127.0.0.1:41234"}


def _exchanged(guard: LocalGuard) -> Client:
    client = Client(guard)
    launch = guard.issue_launch_url().removeprefix(guard.origin)
    assert client.get(launch, environ_overrides=HOST).status_code == 303
    return client


def test_guard_refuses_everything_before_the_exchange(guard):
    client = Client(guard)
    assert client.get("/", environ_overrides=HOST).status_code == 403
    assert client.get("/healthz", environ_overrides=HOST).status_code == 403


def test_guard_lets_the_system_browser_back_to_the_sign_in_callback_only(guard):
    """The browser that signed in on the campus server has no launch cookie and comes from the
    server's site: the callback alone reaches the portal (which checks its state); its Host
    header is checked like every other request's."""
    client = Client(guard)
    from_server = {**HOST, "HTTP_SEC_FETCH_SITE": "cross-site"}
    answer = client.get("/sign-in/callback?code=c&state=s", environ_overrides=from_server)
    assert (answer.status_code, answer.get_data()) == (200, b"hello")
    wrong_host = {"HTTP_HOST": "localhost:41234"}
    assert client.get("/sign-in/callback?state=s", environ_overrides=wrong_host).status_code == 400
    assert client.post("/sign-in/callback", environ_overrides=HOST).status_code == 403
    assert client.get("/sign-in/callback/x", environ_overrides=HOST).status_code == 403
    assert client.get("/sign-in/campus/status", environ_overrides=HOST).status_code == 403


def test_guard_exchange_sets_the_cookie_once(guard):
    client = Client(guard)
    launch = guard.issue_launch_url().removeprefix(guard.origin)
    response = client.get(launch, environ_overrides=HOST)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert client.get("/", environ_overrides=HOST).get_data() == b"hello"
    assert Client(guard).get(launch, environ_overrides=HOST).status_code == 403
    assert Client(guard).post(launch, environ_overrides=HOST).status_code == 405


def test_guard_adds_the_opener_policy_unless_the_portal_has_its_own_window(guard):
    client = _exchanged(guard)
    headers = client.get("/", environ_overrides=HOST).headers
    assert headers.get_all("Cross-Origin-Opener-Policy") == ["same-origin"]
    guard.isolate_from_other_sites = False  # what the launcher sets when it opens its window
    assert "Cross-Origin-Opener-Policy" not in client.get("/", environ_overrides=HOST).headers


def _sends_to_login(environ, start_response):
    """A portal whose `/` sends visitors on (with a cookie of its own); its other pages answer."""
    if environ["PATH_INFO"] == "/":
        start_response(
            "302 FOUND", [("Location", "/login?from=home"), ("Set-Cookie", "session=abc; Path=/")]
        )
        return [b"redirecting"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["PATH_INFO"].encode()]


def test_guard_launch_goes_where_the_portal_sends_the_visitor_in_one_hop():
    guard = LocalGuard(_sends_to_login)
    guard.port = 41234
    client = Client(guard)
    launch = guard.issue_launch_url().removeprefix(guard.origin)
    response = client.get(launch, environ_overrides=HOST)
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?from=home"
    cookies = response.headers.getlist("Set-Cookie")
    assert cookies[0].startswith(f"{COOKIE_NAME}=") and "session=abc; Path=/" in cookies
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/login", environ_overrides=HOST).get_data() == b"/login"
    assert Client(guard).get(launch, environ_overrides=HOST).status_code == 403  # still once


@pytest.mark.parametrize(
    "location", ["//evil.example/x", "http://evil.example/", "/\\evil.example", "", "login"]
)
def test_guard_launch_never_redirects_off_the_portal(location):
    def portal(environ, start_response):
        start_response("302 FOUND", [("Location", location)])
        return [b""]

    guard = LocalGuard(portal)
    guard.port = 41234
    launch = guard.issue_launch_url().removeprefix(guard.origin)
    response = Client(guard).get(launch, environ_overrides=HOST)
    assert response.status_code == 303 and response.headers["Location"] == "/"


def test_guard_new_launch_url_replaces_the_unused_one(guard):
    first = guard.issue_launch_url().removeprefix(guard.origin)
    second = guard.issue_launch_url().removeprefix(guard.origin)
    assert Client(guard).get(first, environ_overrides=HOST).status_code == 403
    assert Client(guard).get(second, environ_overrides=HOST).status_code == 303


def test_guard_host_must_match_exactly(guard):
    client = _exchanged(guard)
    for host in ("localhost:41234", "127.0.0.1", "127.0.0.1:41235", "evil.example:41234", ""):
        assert client.get("/", environ_overrides={"HTTP_HOST": host}).status_code == 400


def test_guard_origin_rules_for_state_changing_requests(guard):
    client = _exchanged(guard)
    ok = {**HOST, "HTTP_ORIGIN": "http://127.0.0.1:41234"}
    assert client.post("/x", environ_overrides=ok).status_code == 200
    assert client.post("/x", environ_overrides=HOST).status_code == 200  # no Origin at all
    for bad in (
        {"HTTP_ORIGIN": "http://evil.example"},
        {"HTTP_ORIGIN": "null"},
        {"HTTP_REFERER": "http://127.0.0.1:41234.evil.example/"},
        {"HTTP_SEC_FETCH_SITE": "cross-site"},
    ):
        assert client.post("/x", environ_overrides={**HOST, **bad}).status_code == 403, bad
    # reading with a foreign Origin is harmless (the response is not readable cross-origin)
    assert (
        client.get("/x", environ_overrides={**HOST, "HTTP_ORIGIN": "http://e"}).status_code == 200
    )


def test_guard_control_endpoint(guard):
    calls = []
    guard.on_focus = lambda: calls.append(1) or True
    client = Client(guard)
    key = {**HOST, "HTTP_X_CAMPUS_PORTAL_CONTROL": guard.control_key}
    assert client.post("/.campus-portal/focus", environ_overrides=HOST).status_code == 403
    assert client.get("/.campus-portal/focus", environ_overrides=key).status_code == 403
    response = client.post("/.campus-portal/focus", environ_overrides=key)
    assert response.status_code == 200 and response.get_data() == b"focused"
    assert calls == [1]


# --- data locations -----------------------------------------------------------------------------


def test_paths_flag_beats_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path / "env"))
    chosen = paths.resolve(tmp_path / "flag")
    assert chosen.data_dir == (tmp_path / "flag").resolve()
    assert chosen.log_file == (tmp_path / "flag" / "logs" / "campus-portal.log").resolve()
    demo = paths.resolve(tmp_path / "flag", demo=True)
    assert demo.data_dir == (tmp_path / "flag" / "demo").resolve()
    assert demo.log_file == (tmp_path / "flag" / "demo" / "logs" / "campus-portal.log").resolve()


def test_paths_environment_and_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path / "env"))
    assert paths.resolve().data_dir == (tmp_path / "env").resolve()
    demo = paths.resolve(demo=True)
    assert demo.data_dir == (tmp_path / "env" / "demo").resolve()
    assert demo.database.name == "portal.db"


def test_paths_default_is_the_platform_user_dirs(monkeypatch):
    import platformdirs

    from portal.config import default_data_dir

    monkeypatch.delenv("PORTAL_DATA_DIR", raising=False)
    chosen = paths.resolve()
    assert chosen.data_dir == default_data_dir()
    assert chosen.log_dir == Path(platformdirs.user_log_dir("campus-portal", appauthor=False))
    assert paths.resolve(demo=True).log_dir == chosen.log_dir / "demo"


# --- resources: from source and frozen ----------------------------------------------------------


def test_resources_from_source():
    assert resources.resources_dir() == Path(resources.__file__).parent / "resources"
    assert resources.icon_path().is_file()
    assert resources.resource_path("icon.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileNotFoundError):
        resources.resource_path("nope.png")


def test_resources_when_frozen(tmp_path, monkeypatch):
    bundle = tmp_path / "bundle"
    (bundle / "desktop" / "resources").mkdir(parents=True)
    (bundle / "desktop" / "resources" / "icon.png").write_bytes(b"png")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    assert resources.resources_dir() == bundle / "desktop" / "resources"
    assert resources.resource_path("icon.png").read_bytes() == b"png"


# --- settings -----------------------------------------------------------------------------------


def test_desktop_settings_from_the_user_file(tmp_path, monkeypatch):
    user = tmp_path / "user.toml"
    user.write_text("[portal]\nidle_logout_minutes = 5\n[desktop]\nbackups_to_keep = 3\n")
    monkeypatch.setenv("PORTAL_USER_CONFIG", str(user))
    assert load_desktop_settings() == DesktopSettings(backups_to_keep=3, daily_backup=True)
    user.write_text("[desktop]\nbackups_to_keep = 0\n")
    with pytest.raises(SettingsProblem):
        load_desktop_settings()
    user.write_text("[desktop]\nbackups = 3\n")
    with pytest.raises(SettingsProblem):
        load_desktop_settings()


def test_idle_logout_from_the_command_line_and_files(tmp_path, monkeypatch):
    from desktop.launcher import _create_app

    data = paths.resolve(tmp_path / "data")
    args = argparse.Namespace(idle_logout=7)
    app = _create_app(data, args, data.log_file)
    assert app.config["PORTAL"]["IDLE_LOGOUT_MINUTES"] == 7
    assert app.config["LOG_FILE"] == str(data.log_file)
    user = tmp_path / "user.toml"
    user.write_text("[portal]\nidle_logout_minutes = 3\n")
    monkeypatch.setenv("PORTAL_USER_CONFIG", str(user))
    app = _create_app(data, argparse.Namespace(idle_logout=None), None)
    assert app.config["PORTAL"]["IDLE_LOGOUT_MINUTES"] == 3
    with pytest.raises(SettingsProblem):
        _create_app(data, argparse.Namespace(idle_logout=-1), None)


# --- backups ------------------------------------------------------------------------------------


def _database(path: Path, rows: int = 3) -> Path:
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE alembic_version (version_num TEXT)")
        connection.execute("INSERT INTO alembic_version VALUES ('0001')")
        connection.execute("CREATE TABLE notes (body TEXT)")
        connection.executemany("INSERT INTO notes VALUES (?)", [(f"n{i}",) for i in range(rows)])
        connection.commit()
    return path


def test_online_backup_includes_uncheckpointed_wal(tmp_path):
    source = tmp_path / "live.db"
    _database(source)
    writer = sqlite3.connect(source)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("INSERT INTO notes VALUES ('only in the WAL')")
    writer.commit()
    try:
        copy = backups.online_backup(source, tmp_path / "copies" / "copy.db")
    finally:
        writer.close()
    assert backups.check_backup_file(copy) == "0001"
    with closing(sqlite3.connect(copy)) as connection:
        bodies = {row[0] for row in connection.execute("SELECT body FROM notes")}
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert "only in the WAL" in bodies
    assert not list((tmp_path / "copies").glob("*.partial"))


def test_daily_backup_once_a_day_and_rotation(tmp_path):
    data = paths.resolve(tmp_path / "data")
    data.data_dir.mkdir(parents=True)
    _database(data.database)
    start = datetime(2026, 3, 1, 9, 0, 0)
    made = [backups.daily_backup(data, keep=3, now=start + timedelta(days=day)) for day in range(5)]
    assert all(made)
    assert backups.daily_backup(data, keep=3, now=start + timedelta(days=4, hours=2)) is None
    kept = sorted(p.name for p in (data.backups_dir / "daily").glob("*.db"))
    assert kept == [
        "portal-20260303-090000.db",
        "portal-20260304-090000.db",
        "portal-20260305-090000.db",
    ]


def test_daily_backup_skips_a_damaged_database(tmp_path):
    data = paths.resolve(tmp_path / "data")
    data.data_dir.mkdir(parents=True)
    _database(data.database, rows=2000)
    with closing(sqlite3.connect(data.database)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(data.database.read_bytes())
    raw[4096 * 2 : 4096 * 2 + 64] = b"\xff" * 64  # scribble over a b-tree page header
    data.database.write_bytes(bytes(raw))
    assert backups.daily_backup(data, keep=3) is None
    assert not (data.backups_dir / "daily").exists() or not list(
        (data.backups_dir / "daily").glob("*.db")
    )


# --- window state -------------------------------------------------------------------------------


def test_window_state_round_trip_and_clamping(tmp_path):
    state_file = tmp_path / "window.json"
    assert WindowState.load(state_file) == WindowState()
    WindowState(width=1400, height=900, x=10, y=20).save(state_file)
    assert WindowState.load(state_file) == WindowState(width=1400, height=900, x=10, y=20)
    state_file.write_text('{"width": 5, "height": 99999999, "x": 123456789, "y": 1}')
    state = WindowState.load(state_file)
    assert state.width == MIN_SIZE[0] and state.height == 10_000 and state.x is None
    state_file.write_text("not json")
    assert WindowState.load(state_file) == WindowState()


# --- the portal's error page names the log file -------------------------------------------------


def test_error_page_shows_the_log_location_not_a_traceback(tmp_path):
    app = make_app(tmp_path)
    app.config["LOG_FILE"] = "/home/someone/.local/state/campus-portal/log/campus-portal.log"
    app.config["TESTING"] = False
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @public
    def explode():
        raise RuntimeError("boom in a view")

    app.add_url_rule("/explode", "explode", explode)
    response = app.test_client().get("/explode")
    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Something went wrong" in page
    assert app.config["LOG_FILE"] in page
    assert "boom in a view" not in page and "Traceback" not in page
    missing = app.test_client().get("/nothing-here")
    assert app.config["LOG_FILE"] not in missing.get_data(as_text=True)  # only for 5xx


# --- leaving past a window helper thread that waits for a GUI loop that has ended ---------------

STUCK_THREAD = """
import threading, sys
from desktop.window_process import exit_past_stuck_window_threads

forever = threading.Semaphore(0)
threading.Thread(target=forever.acquire, name="Thread-7 (_call)").start()
print("saved", flush=False)
exit_past_stuck_window_threads(7, grace=0.1)
print("not reached")
"""


def test_a_stuck_window_thread_does_not_keep_the_process_alive():
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", STUCK_THREAD], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 7
    assert result.stdout == "saved\n"  # flushed before leaving


FINISHING_THREAD = """
import threading
from desktop.window_process import exit_past_stuck_window_threads

worker = threading.Thread(target=threading.Event().wait, args=(0.05,))
worker.start()
exit_past_stuck_window_threads(7, grace=30)
print("returned", worker.is_alive(), flush=True)
"""


def test_leaving_waits_for_threads_that_finish():
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", FINISHING_THREAD], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout) == (0, "returned False\n")
