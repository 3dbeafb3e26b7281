"""Every role reaches its work by clicking, every page is clean in the console, and nothing
scrolls sideways on a narrow screen.

The crawl starts at each role's home page, follows every link on it (one click), and every link
on the pages it reached (two clicks). What it found is compared with the route-by-role matrix
(tests/*/rbac_cases.py): every page the role may open that takes no form input must be among
them. The pages visited are then checked for console errors, and again at 400 px wide.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from werkzeug.exceptions import HTTPException

from tests.auth.test_rbac_matrix import all_cases
from tests.browser.conftest import login_page, save_screenshot

pytestmark = pytest.mark.browser

# Demo account of each role.
ACCOUNTS = {
    "student": "student",
    "instructor": "instructor",
    "lab_staff": "labstaff",
    "admin": "admin",
}

# GET routes that are not pages to be found by clicking, and why.
NOT_REACHED_BY_CLICKING = {
    "main.healthz": "a health check for machines, not a page",
    "setup.first_admin": "only on an empty database, before the first account exists",
    "admin.import_job": "exists only after a file was uploaded (form input)",
    "admin.import_progress": "exists only after a file was uploaded (form input)",
    "admin.import_report": "exists only after a file was uploaded (form input)",
    "grading.finalise_check": "asked by the gradebook's Finalise grades button: the marks "
    "missing at that moment, for its confirmation (JSON, not a page)",
    "sync_device.my_conflicts": "linked from the sync status area of a copy connected to a "
    "campus server (tests/sync); a copy that is not connected has no conflicts to show",
}
# Downloads: their links must be found, but they are not opened as pages.
DOWNLOADS = {
    "admin.roster_export",
    "admin.gradebook_export",
    "admin.attendance_export",
    "admin.import_template",
    "submissions.download",
    "submissions.download_zip",
}
JSON_API = "/api/"
VISITS_PER_ENDPOINT = 2
NARROW = {"width": 400, "height": 800}


@dataclass
class Crawl:
    found: dict[str, int] = field(default_factory=dict)  # endpoint -> clicks from home
    visited: list[str] = field(default_factory=list)  # paths opened as pages
    console_errors: list[str] = field(default_factory=list)


def expected_pages(role: str) -> set[str]:
    return {
        endpoint
        for endpoint, case in all_cases().items()
        if case.method == "GET"
        and case.allows(role)
        and case.expected_status(role) == 200  # not 404: absent from this (desktop) copy
        and not case.path.startswith(JSON_API)  # answers programs (tokens), not pages
        and endpoint not in NOT_REACHED_BY_CLICKING
    }


def _endpoint(app: Any, url: str, origin: str) -> tuple[str, str] | None:
    """(endpoint, path with query) of a link to the portal, or None for anything else."""
    if not url.startswith(origin):
        return None
    parts = urlsplit(url)
    adapter = app.url_map.bind("127.0.0.1")
    try:
        endpoint, _ = adapter.match(parts.path, method="GET")
    except HTTPException:
        return None
    if endpoint == "static":
        return None
    return endpoint, parts.path + (f"?{parts.query}" if parts.query else "")


def _links(page: Any) -> list[str]:
    return page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")


def crawl(browser: Any, live_server: Any, role: str) -> Crawl:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    result = Crawl()
    current = {"path": ""}
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and result.console_errors.append(f"{current['path']}: {message.text}")
        ),
    )
    page.on("pageerror", lambda error: result.console_errors.append(f"{current['path']}: {error}"))
    try:
        login_page(page, ACCOUNTS[role])
        app = live_server.app
        current["path"] = "/"
        page.goto("/")
        home = _endpoint(app, page.url, live_server.url)
        assert home is not None
        result.found[home[0]] = 0
        result.visited.append(home[1])
        to_visit: list[tuple[str, str]] = []
        per_endpoint: dict[str, int] = defaultdict(int)
        for url in _links(page):
            target = _endpoint(app, url, live_server.url)
            if target is None:
                continue
            endpoint, path = target
            result.found.setdefault(endpoint, 1)
            if (
                endpoint not in DOWNLOADS
                and endpoint != "auth.logout"
                and path not in result.visited
                and (endpoint, path) not in to_visit
                and per_endpoint[endpoint] < VISITS_PER_ENDPOINT
            ):
                per_endpoint[endpoint] += 1
                to_visit.append((endpoint, path))
        for _endpoint_name, path in to_visit:
            current["path"] = path
            response = page.goto(path)
            assert response is not None and response.status == 200, f"{path}: {response}"
            result.visited.append(path)
            for url in _links(page):
                target = _endpoint(app, url, live_server.url)
                if target is not None:
                    result.found.setdefault(target[0], 2)
    finally:
        context.close()
    return result


@pytest.fixture(scope="module")
def crawls(browser, live_server) -> dict[str, Crawl]:
    return {role: crawl(browser, live_server, role) for role in ACCOUNTS}


@pytest.mark.parametrize("role", list(ACCOUNTS))
def test_every_page_of_a_role_is_within_two_clicks_of_its_home(crawls, role):
    found = crawls[role].found
    missing = sorted(expected_pages(role) - set(found))
    assert missing == [], f"{role} cannot reach these pages within two clicks of home: {missing}"
    assert max(found.values()) <= 2


@pytest.mark.parametrize("role", list(ACCOUNTS))
def test_no_console_errors_on_any_page(crawls, role):
    assert crawls[role].console_errors == []
    assert len(crawls[role].visited) > 5


@pytest.mark.parametrize("role", list(ACCOUNTS))
def test_no_page_scrolls_sideways_at_400px(browser, live_server, crawls, role):
    context = browser.new_context(base_url=live_server.url, viewport=NARROW)
    context.set_default_timeout(15_000)
    page = context.new_page()
    overflowing = []
    try:
        login_page(page, ACCOUNTS[role])
        seen: set[str] = set()
        for path in crawls[role].visited:
            page.goto(path)
            width = page.evaluate(
                "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            if width > 0:
                overflowing.append(f"{path} (+{width}px)")
            endpoint = _endpoint(live_server.app, page.url, live_server.url)
            name = endpoint[0] if endpoint else path
            if name not in seen:
                seen.add(name)
                save_screenshot(page, f"narrow-{role}-{name}")
    finally:
        context.close()
    assert overflowing == [], f"pages wider than 400 px for {role}: {overflowing}"
