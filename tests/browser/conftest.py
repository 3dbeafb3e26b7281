"""Browser-test fixtures: a live portal served by waitress, Debian's Chromium driven by Playwright.

Use them in any tests/browser/test_*.py module:

    pytestmark = pytest.mark.browser

    def test_something(live_server, page, login, screenshot, assert_accessible):
        login(page, "student")                   # demo accounts, password "demo-pass"
        page.goto(live_server.url + "/courses")  # or a path: the context has a base_url
        screenshot(page, "catalogue")            # tests/artifacts/catalogue.png
        assert_accessible(page)                  # axe-core: no serious/critical violations

`live_server` is one portal per test module (its own SQLite file holding the small demo data),
so modules cannot disturb each other. Arrange extra data with `live_server.session()` and the
factories in tests/factories.py; whatever the block adds is committed when it ends:

    with live_server.session() as db:
        section = make_section(db, capacity=1, waitlist_capacity=1)
        section_id = section.id

`browser` is one Chromium per test run; `context` and `page` are fresh for each test (no cookies
shared). Without /usr/bin/chromium the tests are skipped locally; with CI=true they fail instead.

Wait for what a person waits for, never for time: a page is on screen before its deferred
scripts (htmx, the page's own script) have run, so after a navigation by a click, wait until it
has loaded (`page.wait_for_load_state()`; `page.goto` and `page.reload` do) before typing into
a gradebook or pressing an htmx button; then wait for the outcome with `expect(...)` (the swap
settled, the count updated) rather than reading the page once.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy.orm import Session

from portal import create_app
from portal.demo.services import DEMO_PASSWORD, generate
from portal.extensions import db as _db
from tests.conftest import ARTIFACTS, unavailable

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE_SCRIPT = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
# Served under the portal's own origin (see assert_accessible), never by the portal itself.
AXE_URL_PATH = "/__browser-tests__/axe.min.js"
BLOCKING_IMPACTS = ("serious", "critical")
STARTUP_TIMEOUT = 15.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is a browser test, marked or not."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)


def _unavailable(reason: str) -> NoReturn:
    """Skip locally; in CI a missing browser or tool is a failure, not a silent skip."""
    unavailable(reason)


# --- The live portal ---------------------------------------------------------------------------


@dataclass
class LiveServer:
    """A running portal: its base URL and the Flask app behind it (for arranging data)."""

    url: str
    app: Flask

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A database session on the live portal's database, committed when the block ends."""
        with self.app.app_context():
            try:
                yield _db.session
                _db.session.commit()
            except BaseException:
                _db.session.rollback()
                raise
            finally:
                _db.session.remove()


def _wait_until_healthy(url: str, timeout: float = STARTUP_TIMEOUT) -> None:
    """Poll /healthz until it answers 200 with a healthy database."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:  # noqa: S310
                body = json.loads(response.read())
                if response.status == 200 and body.get("status") == "ok":
                    return
                last_error = f"status {response.status}: {body}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last_error = str(exc)
        time.sleep(0.05)  # polling interval while the server starts, not a wait for a result
    raise RuntimeError(f"the portal at {url} did not become healthy: {last_error}")


@contextmanager
def serve(app: Flask, threads: int = 8, port: int = 0) -> Iterator[str]:
    """Serve `app` with waitress on 127.0.0.1 and a free port (or `port`: a server stopped and
    started again on the same address); yields the base URL."""
    from waitress.server import create_server

    server: Any = create_server(app, host="127.0.0.1", port=port, threads=threads)
    url = f"http://127.0.0.1:{server.effective_port}"
    thread = threading.Thread(target=server.run, name="waitress-live-server", daemon=True)
    thread.start()
    try:
        _wait_until_healthy(url)
        yield url
    finally:
        # Close every channel and the listening socket; run() returns once its map is empty.
        logging.getLogger("waitress").setLevel(logging.CRITICAL)
        while server._map:
            for channel in list(server._map.values()):
                channel.handle_close()
        server.task_dispatcher.shutdown()
        thread.join(timeout=10)


def live_portal_app(tmp_path: Path, demo_size: str = "small", **overrides: Any) -> Flask:
    """A portal on a fresh SQLite file in tmp_path, holding the demo data of that size."""
    # Browser tests log in many times a minute; the log-in limit has tests of its own.
    config: dict[str, Any] = {
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}",
        "SECRET_KEY": "browser-test-secret-key",
        "LOGIN_RATE_LIMIT": "10000 per minute",
        **overrides,
    }
    app = create_app(config)
    with app.app_context():
        upgrade()  # the schema as shipped: migrations, exactly like `flask init-db`
        generate(_db.session, demo_size, upload_dir=Path(app.config["PORTAL"]["UPLOAD_DIR"]))
        _db.session.commit()
        _db.session.remove()
    return app


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One portal per test module, with the small demo data, served by waitress."""
    app = live_portal_app(tmp_path_factory.mktemp("live-portal"))
    with serve(app) as url:
        yield LiveServer(url=url, app=app)
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()


# --- Chromium ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A fresh browser profile for one test; relative URLs go to the live portal."""
    browser_context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 900}, locale="en-GB"
    )
    browser_context.set_default_timeout(10_000)
    yield browser_context
    browser_context.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


@pytest.fixture
def new_page(browser: Any, live_server: LiveServer) -> Iterator[Callable[[], Any]]:
    """new_page() opens a page in a separate profile: a second user logged in at the same time."""
    contexts: list[Any] = []

    def open_page() -> Any:
        other = browser.new_context(
            base_url=live_server.url, viewport={"width": 1280, "height": 900}, locale="en-GB"
        )
        other.set_default_timeout(10_000)
        contexts.append(other)
        return other.new_page()

    yield open_page
    for other in contexts:
        other.close()


# --- Helpers ----------------------------------------------------------------------------------


def login_page(page: Any, username: str, password: str = DEMO_PASSWORD) -> None:
    """Log in through the form like a person would; fails with the page's message if refused."""
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    if re.search(r"/login(\?|$)", page.url):
        alert = page.locator(".alert, .invalid-feedback").all_inner_texts()
        raise AssertionError(f"log-in as {username!r} was refused: {alert}")


def console_errors(
    page: Any, errors: list[str] | None = None, *, unless: Callable[[Any], bool] | None = None
) -> list[str]:
    """Collect the page's console errors (script errors, CSP violations) into `errors` (a new
    list unless given, so several pages can share one) and return it; a message for which
    `unless(message)` is true is left out."""
    found: list[str] = [] if errors is None else errors

    def _seen(message: Any) -> None:
        if message.type == "error" and not (unless is not None and unless(message)):
            found.append(message.text)

    page.on("console", _seen)
    return found


def save_screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of the page as tests/artifacts/<name>.png and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "page"
    path = ARTIFACTS / f"{safe}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def _format_violations(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(
            f"- [{violation['impact']}] {violation['id']}: {violation['help']} "
            f"({violation['helpUrl']})"
        )
        for node in violation["nodes"][:5]:
            target = " ".join(str(t) for t in node.get("target", []))
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            lines.append(f"    at {target}: {node.get('html', '')[:160]}")
            if summary:
                lines.append(f"      {summary[:300]}")
        if len(violation["nodes"]) > 5:
            lines.append(f"    … and {len(violation['nodes']) - 5} more elements")
    return "\n".join(lines)


def check_accessible(page: Any, *, impacts: tuple[str, ...] = BLOCKING_IMPACTS) -> list[Any]:
    """Run axe-core on the page; fail listing every violation with one of `impacts`.

    The portal's CSP allows scripts from 'self' only, so axe is not injected inline (that would
    be blocked, and bypassing the CSP would test a different page than users get). Instead the
    page fetches it from a URL on the portal's own origin that Playwright answers from
    tests/browser/node_modules: the CSP stays in force during the check. Returns the
    violations of lower impact, for tests that want to look at them.
    """
    if not AXE_SCRIPT.exists():
        _unavailable(f"axe-core is not installed: run `cd tests/browser && npm ci` ({AXE_SCRIPT})")
    origin = re.match(r"https?://[^/]+", page.url)
    assert origin, f"the page is not on the portal: {page.url}"
    script_url = origin.group(0) + AXE_URL_PATH
    page.route(
        script_url,
        lambda route: route.fulfill(
            status=200, content_type="text/javascript", body=AXE_SCRIPT.read_text("utf-8")
        ),
    )
    # Colours are checked as they settle, not halfway through a button's hover transition (the
    # pointer stays where the test last clicked, and a button swapped in under it starts its
    # transition again): Bootstrap drops its transitions for reduced motion.
    page.emulate_media(reduced_motion="reduce")
    try:
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.add_script_tag(url=script_url)
        results = page.evaluate(
            """() => axe.run(document, {
                   runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',
                                                    'best-practice']},
                   resultTypes: ['violations'],
               })"""
        )
    finally:
        page.unroute(script_url)
    violations = results["violations"]
    blocking = [v for v in violations if v.get("impact") in impacts]
    assert not blocking, (
        f"axe-core found {len(blocking)} serious/critical accessibility problem(s) on "
        f"{page.url}:\n{_format_violations(blocking)}"
    )
    return [v for v in violations if v not in blocking]


@pytest.fixture
def login() -> Callable[..., None]:
    """login(page, username, password="demo-pass")."""
    return login_page


@pytest.fixture
def screenshot() -> Callable[..., Path]:
    """screenshot(page, name) -> tests/artifacts/<name>.png."""
    return save_screenshot


@pytest.fixture
def assert_accessible() -> Callable[..., list[Any]]:
    """assert_accessible(page): no serious or critical axe-core violations."""
    return check_accessible
