"""The portal built in the background: what requests see before, during and after the build."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import threading

import pytest
from werkzeug.test import Client

from desktop.problems import DatabaseProblem, LauncherProblem
from desktop.starting import STARTING_TITLE, PortalBuild
from tests.desktop.launcher_process import ROOT, launcher_env


def _portal(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"portal answered {environ['PATH_INFO']}".encode()]


class Gate:
    """A build that finishes (or fails) only when the test says so."""

    def __init__(self, outcome=_portal) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.outcome = outcome

    def __call__(self):
        self.entered.set()
        assert self.release.wait(30), "the test never released the build"
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


def _get_in_thread(build: PortalBuild, path: str, **kwargs) -> tuple[threading.Thread, dict]:
    answer: dict = {}

    def fetch() -> None:
        response = Client(build).get(path, **kwargs)
        answer.update(status=response.status_code, text=response.get_data(as_text=True))

    thread = threading.Thread(target=fetch)
    thread.start()
    return thread, answer


def test_a_request_made_during_the_build_waits_for_the_portal():
    gate = Gate()
    build = PortalBuild(gate, patience=30)
    build.start()
    assert gate.entered.wait(10)
    thread, answer = _get_in_thread(build, "/courses")
    thread.join(0.2)
    assert thread.is_alive() and not answer, "answered before the portal was built"
    gate.release.set()
    thread.join(10)
    assert answer == {"status": 200, "text": "portal answered /courses"}
    assert build.wait(1) is _portal and build.seconds is not None
    # Built: later requests go straight to the portal.
    assert Client(build).get("/").get_data(as_text=True) == "portal answered /"


def test_a_long_build_answers_503_with_a_page_that_reloads_itself():
    gate = Gate()
    build = PortalBuild(gate, patience=0.05)
    build.start()
    try:
        page = Client(build).get("/", headers={"Accept": "text/html"})
        assert page.status_code == 503 and page.headers["Retry-After"]
        text = page.get_data(as_text=True)
        assert STARTING_TITLE in text and 'http-equiv="refresh"' in text
        health = Client(build).get("/healthz")
        assert health.status_code == 503 and health.json == {"status": "starting"}
        with pytest.raises(TimeoutError):
            build.wait(0.01)
    finally:
        gate.release.set()
        build.join()
    assert Client(build).get("/healthz").status_code == 200


def test_a_failed_build_shows_its_problem_and_wait_raises_it():
    problem = DatabaseProblem("The database file is damaged", "portal.db <cannot> be opened")
    gate = Gate(problem)
    build = PortalBuild(gate, patience=30)
    build.start()
    assert gate.entered.wait(10)
    thread, answer = _get_in_thread(build, "/")
    gate.release.set()
    thread.join(10)
    assert answer["status"] == 500
    assert "The database file is damaged" in answer["text"]
    assert "portal.db &lt;cannot&gt; be opened" in answer["text"]  # escaped, never markup
    with pytest.raises(DatabaseProblem) as raised:
        build.wait(1)
    assert raised.value is problem
    health = Client(build).get("/healthz")
    assert health.status_code == 500
    assert json.loads(health.get_data()) == {
        "status": "error",
        "problem": "The database file is damaged",
    }


def test_an_unexpected_error_becomes_a_problem_that_points_to_the_log():
    gate = Gate(KeyError("models"))
    build = PortalBuild(gate, patience=30)
    build.start()
    gate.release.set()
    with pytest.raises(LauncherProblem) as raised:
        build.wait(10)
    assert "KeyError" in raised.value.detail and "log file" in raised.value.detail
    assert Client(build).get("/").status_code == 500


# What the first page needs, and only that: measured with `python -X importtime`.
BUILD_AND_FIRST_PAGE = """
import sys, time
from pathlib import Path
from werkzeug.test import Client
from desktop.launcher import _build_portal, build_parser
from desktop.paths import resolve

args = build_parser().parse_args(["--data-dir", sys.argv[1]])
app = _build_portal(resolve(args.data_dir, demo=False), args, None, time.monotonic())
client, host = Client(app), {"HTTP_HOST": "127.0.0.1:5000"}
assert client.get("/", environ_overrides=host).status_code == 302  # the launch asks `/` first
page = client.get("/login", environ_overrides=host)
assert page.status_code == 200, page.status_code
from portal.models import Base
if not Base.registry._new_mappers:
    print("ORM mappers configured")
print(" ".join(sorted(name for name in sys.modules if name.partition(".")[0] in {
    "httpx", "alembic", "flask_migrate"} or name == "sqlalchemy.dialects.postgresql")))
"""


def test_the_start_imports_nothing_the_first_page_does_not_need(admin_data_dir):
    """No HTTP client (a sync imports it), no Alembic (the schema is current), no PostgreSQL
    dialect (the server's) in a desktop start up to its log-in page, and no ORM mapper set
    up for it (the log-in itself does that)."""
    assert _first_page_in_a_new_process(admin_data_dir).strip() == ""


def _first_page_in_a_new_process(data_dir) -> str:
    """Build the portal and render its first page in a new process; what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", BUILD_AND_FIRST_PAGE, str(data_dir)],
        cwd=ROOT,
        env=launcher_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_next_start_renders_its_first_page_from_templates_compiled_before(admin_data_dir):
    """The log-in page's templates are compiled once, kept owner-only in the data folder, and
    loaded (not compiled and written again) by the next start."""
    cache = admin_data_dir / "cache" / "templates"
    if cache.exists():  # the fixture's folder was copied from one that started already
        shutil.rmtree(cache)
    _first_page_in_a_new_process(admin_data_dir)
    written = {path.name: path.stat() for path in cache.iterdir()}
    assert len(written) >= 2  # the log-in page and the layout it extends, at least
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert {stat.S_IMODE(info.st_mode) for info in written.values()} == {0o600}

    _first_page_in_a_new_process(admin_data_dir)
    again = {path.name: path.stat().st_mtime_ns for path in cache.iterdir()}
    assert again == {name: info.st_mtime_ns for name, info in written.items()}


def test_compiled_templates_are_never_loaded_from_a_folder_others_can_write(tmp_path, caplog):
    from flask import Flask

    from desktop.template_cache import cache_compiled_templates

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    app = Flask(__name__)
    assert not cache_compiled_templates(app, shared)
    assert app.jinja_env.bytecode_cache is None
    assert "can be written by other OS users" in caplog.text

    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(private)
    assert not cache_compiled_templates(app, link)  # a link could be pointed elsewhere later
    assert app.jinja_env.bytecode_cache is None
    assert cache_compiled_templates(app, private)
    assert app.jinja_env.bytecode_cache is not None
