"""Idle log-out takes the page itself to the log-in screen (shared lab PCs)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_an_idle_page_goes_to_the_login_screen_by_itself(live_server, page, login, screenshot):
    assert live_server.app.config["PORTAL"]["IDLE_LOGOUT_MINUTES"] == 15
    page.clock.install()  # the page's timers run on a clock the test moves
    login(page, "student")
    page.goto("/grades")
    expect(page.get_by_role("heading", name="My grades")).to_be_visible()
    assert page.locator("body").get_attribute("data-idle-logout-minutes") == "15"

    page.clock.fast_forward("14:30")
    expect(page.get_by_role("heading", name="My grades")).to_be_visible()
    assert page.url.endswith("/grades")

    page.clock.fast_forward("00:45")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_text("You were logged out after a period of inactivity.")).to_be_visible()
    expect(page.get_by_role("heading", name="My grades")).to_have_count(0)
    screenshot(page, "idle-logout-login-screen")
    # The session is over on the server too.
    page.goto("/grades")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_htmx_requests_count_as_activity(live_server, page, login):
    page.clock.install()
    login(page, "admin")
    page.goto("/")
    page.clock.fast_forward("10:00")
    # htmx.ajax's promise settles after the page's own htmx:afterRequest handlers have run (the
    # idle timer is armed again by then), and evaluate waits for it.
    page.evaluate("() => htmx.ajax('GET', '/healthz', {swap: 'none'})")
    page.clock.fast_forward("10:00")  # 20 minutes after the page, 10 after the last request
    expect(page.get_by_role("heading", name="Administration")).to_be_visible()
    page.clock.fast_forward("05:30")
    expect(page).to_have_url(re.compile(r"/login$"))


def test_no_timer_when_idle_logout_is_off(tmp_path, browser):
    from tests.browser.conftest import live_portal_app, login_page, serve

    app = live_portal_app(tmp_path, IDLE_LOGOUT_MINUTES=0)
    with serve(app) as url:
        context = browser.new_context(base_url=url)
        page = context.new_page()
        page.clock.install()
        login_page(page, "student")
        page.goto("/grades")
        assert page.locator("body").get_attribute("data-idle-logout-minutes") is None
        page.clock.fast_forward("02:00:00")
        expect(page.get_by_role("heading", name="My grades")).to_be_visible()
        context.close()


def test_the_import_progress_poll_is_not_activity(live_server, page, login):
    """A running import's page polls every second; an admin who walks away is still logged out."""
    from pathlib import Path

    from portal.admin.import_jobs import JobStore

    store = JobStore(Path(live_server.app.config["PORTAL"]["SHARED_DIR"]) / "imports")
    job = store.create("courses", "courses.csv", b"code,title,credits,department\n", "admin")
    job.phase, job.step, job.done, job.total = "checking", "Checking rows", 10, 100
    store.save(job)  # never finishes: the page keeps polling
    page.clock.install()
    login(page, "admin")
    page.goto(f"/admin/imports/{job.id}")
    expect(page.get_by_text("Checking rows: 10 of 100 (10%)")).to_be_visible()
    with page.expect_response(lambda r: r.url.endswith(f"/imports/{job.id}/progress")):
        page.clock.fast_forward("10:00")  # the poll runs, and is not counted as activity
    # The page has handled the poll's answer (htmx drops the class once its handlers have run).
    expect(page.locator(".htmx-request")).to_have_count(0)
    expect(page.get_by_text("Checking rows: 10 of 100 (10%)")).to_be_visible()
    page.clock.fast_forward("05:30")  # 15.5 minutes after the page was opened
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_text("You were logged out after a period of inactivity.")).to_be_visible()
