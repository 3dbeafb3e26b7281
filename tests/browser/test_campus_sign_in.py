"""Sign-in on an enrolled copy through the campus server's own pages, in Chromium, with real
parts: the central server (server mode, served by waitress), the copy's local server (its
LocalGuard in front, served by waitress as the launcher does), the copy's window (a page that
opened the launch link) and the system browser (another browser profile, with no launch
cookie: `webbrowser.open` hands it the URL, as the operating system would).

The loopback flow (RFC 8252) ends with the window signed in and an offline PIN chosen; the
device-code flow (RFC 8628) is confirmed on a second page (the phone); then, with the server
stopped, the PIN signs in offline, wrong PINs delay (a fake clock), the offline period ends (the
last online sign-in moved into the past), and an account deactivated on the server is refused
after the copy's next sync."""

from __future__ import annotations

import queue
import re
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update

from desktop.guard import LocalGuard
from desktop.server import EmbeddedServer
from portal.accounts.services import set_active
from portal.auth import login_throttle
from portal.extensions import db as _db
from portal.models import OfflinePin, User, utcnow
from portal.sync import capture
from portal.sync.device import client as sync_client
from portal.sync.device import runner as sync_runner
from portal.sync.device import sign_in_routes
from portal.sync.server import enrolment
from tests import factories
from tests.browser.conftest import check_accessible, save_screenshot, serve
from tests.browser.portals import sqlite_portal

pytestmark = pytest.mark.browser

PASSWORD = factories.PASSWORD
PIN = "482916"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _signed_in_as(page: Any, name: str) -> None:
    expect(page.get_by_role("link", name=name)).to_be_visible()


def _log_out(page: Any) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in to Campus Portal")).to_be_visible()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_campus_account_signs_in_on_a_copy_through_the_browser_then_offline_with_a_pin(
    tmp_path: Path, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_port()
    server_url = f"http://127.0.0.1:{port}"
    server = sqlite_portal(tmp_path / "server", MODE="server")
    # The server signs people in by single sign-on besides its own accounts: its copies offer
    # "Sign in with your campus account" (its pages accept any method of signing in).
    server.config["PORTAL"]["SIGN_IN_METHODS"] = ["local", "oidc"]
    with server.app_context():
        db = _db.session
        admin = factories.make_user(db, "admin", username="ada", full_name="Ada Admin")
        ines = factories.make_user(db, "instructor", username="ines", full_name="Ines Field")
        factories.make_user(db, "lab_staff", username="lena", full_name="Lena Lab")
        code = enrolment.create_enrolment_code(db, ines, created_by=admin, now=factories.now())
        db.commit()
        admin_id = admin.id

    copy = sqlite_portal(tmp_path / "copy", OFFLINE_FAILED_ATTEMPTS=2)
    clock = FakeClock()
    copy.extensions[login_throttle.EXTENSION] = login_throttle.LoginThrottle(
        clock=clock, free_tries=2
    )
    opened: queue.Queue[str] = queue.Queue()
    monkeypatch.setattr(sign_in_routes.webbrowser, "open", lambda url: opened.put(url) or True)
    runner = sync_runner.runner_for(copy)
    runner.http = httpx.Client(timeout=10)

    guard = LocalGuard(copy)
    embedded = EmbeddedServer(guard)
    guard.port = embedded.port
    guard.isolate_from_other_sites = False  # a window, not a browser tab
    embedded.start()
    errors: list[str] = []
    try:
        with serve(server, port=port):
            with copy.app_context():
                engine = _db.engine
            sync_client.enrol(engine, server_url, code, device_name="Lab B PC 4")
            runner.run()

            window_context = browser.new_context(viewport={"width": 1280, "height": 900})
            window_context.set_default_timeout(15_000)
            window = window_context.new_page()
            # Script errors and CSP violations (a refused form's status, 401/422/429, is not one).
            window.on(
                "console",
                lambda m: (
                    errors.append(m.text)
                    if m.type == "error" and not m.text.startswith("Failed to load resource")
                    else None
                ),
            )
            window.goto(guard.issue_launch_url())
            expect(window.get_by_role("heading", name="Log in to Campus Portal")).to_be_visible()
            campus_button = window.get_by_role("button", name="Sign in with your campus account")
            expect(campus_button).to_be_visible()
            save_screenshot(window, "campus-sign-in-01-copy-log-in")
            check_accessible(window)

            # 1. The loopback flow: the system browser signs in on the server and confirms.
            campus_button.click()
            expect(
                window.get_by_text("Your web browser opened the campus sign-in page")
            ).to_be_visible()
            authorize_url = opened.get(timeout=10)
            assert authorize_url.startswith(server_url + "/sync/sign-in/authorize?")
            assert (
                f"redirect_uri=http%3A%2F%2F127.0.0.1%3A{embedded.port}%2Fsign-in%2Fcallback"
                in (authorize_url)
            )
            assert "code_challenge_method=S256" in authorize_url
            system_context = browser.new_context(viewport={"width": 1280, "height": 900})
            system_context.set_default_timeout(15_000)
            system = system_context.new_page()
            system.goto(authorize_url)
            expect(system).to_have_url(re.compile(r"/login\?next="))
            system.get_by_label("Username").fill("lena")
            system.get_by_label("Password").fill(PASSWORD)
            system.get_by_role("button", name="Log in").click()
            expect(system.get_by_role("heading", name="Sign in on Lab B PC 4?")).to_be_visible()
            expect(system.get_by_text("as Lena Lab (lena)")).to_be_visible()
            save_screenshot(system, "campus-sign-in-02-server-confirm")
            check_accessible(system)
            # Cancelled: the window says so; started again, the server's session is there.
            system.get_by_role("button", name="Cancel").click()
            expect(system.get_by_text("The sign-in was cancelled.")).to_be_visible()
            expect(window.get_by_text("The sign-in was cancelled.")).to_be_visible()
            window.get_by_role("link", name="Cancel and go back to the log-in page").click()
            campus_button.click()
            authorize_url = opened.get(timeout=10)
            system.goto(authorize_url)
            expect(system.get_by_role("heading", name="Sign in on Lab B PC 4?")).to_be_visible()
            system.get_by_role("button", name="Sign in on this computer").click()
            expect(system.get_by_text("You can go back to Campus Portal")).to_be_visible()
            callback_url = system.url
            assert callback_url.startswith(f"http://127.0.0.1:{embedded.port}/sign-in/callback?")

            # The window learns of it by itself, and asks for the offline PIN.
            expect(window.get_by_role("heading", name="Choose an offline PIN")).to_be_visible()
            save_screenshot(window, "campus-sign-in-03-choose-pin")
            check_accessible(window)
            window.get_by_label("Offline PIN").fill("111111")
            window.get_by_label("Repeat the PIN").fill("111111")
            window.get_by_role("button", name="Save the PIN").click()
            expect(window.get_by_text("cannot be the same digit repeated")).to_be_visible()
            window.get_by_label("Offline PIN").fill(PIN)
            window.get_by_label("Repeat the PIN").fill(PIN)
            window.get_by_role("button", name="Save the PIN").click()
            expect(window.get_by_text("Your offline PIN is saved")).to_be_visible()
            _signed_in_as(window, "Lena Lab")

            # The browser's way back is one-time, and needs the state of a waiting sign-in.
            system.goto(callback_url)
            expect(system.get_by_text("not one Campus Portal is waiting for")).to_be_visible()
            code_only = re.sub(r"&?state=[^&]*", "", callback_url)
            assert system.goto(code_only).status == 400
            wrong_state = re.sub(r"state=[^&]*", "state=forged", callback_url)
            assert system.goto(wrong_state).status == 400
            # ...and the Host header of the copy's own address, like every other route.
            answer = httpx.get(
                f"http://127.0.0.1:{embedded.port}/sign-in/callback?state=x",
                headers={"Host": f"localhost:{embedded.port}"},
            )
            assert answer.status_code == 400

            # 2. The device code: the person types the copy's code on their phone.
            _log_out(window)
            window.get_by_role("button", name="Sign in with a code on your phone instead").click()
            user_code = window.locator("[data-user-code]").inner_text().strip()
            assert re.fullmatch(r"[B-Z]{4}-[B-Z]{4}", user_code)
            expect(window.get_by_text(server_url + "/device")).to_be_visible()
            save_screenshot(window, "campus-sign-in-04-device-code")
            check_accessible(window)
            phone_context = browser.new_context(viewport={"width": 400, "height": 800})
            phone_context.set_default_timeout(15_000)
            phone = phone_context.new_page()
            phone.goto(server_url + "/device")
            phone.get_by_label("Username").fill("lena")
            phone.get_by_label("Password").fill(PASSWORD)
            phone.get_by_role("button", name="Log in").click()
            phone.get_by_label("Code").fill(user_code.lower().replace("-", " "))
            phone.get_by_role("button", name="Continue").click()
            expect(phone.get_by_role("heading", name="Sign in on Lab B PC 4?")).to_be_visible()
            phone.get_by_role("button", name="Sign in on this computer").click()
            expect(phone.get_by_text("You can go back to that computer")).to_be_visible()
            save_screenshot(phone, "campus-sign-in-05-phone-done")
            check_accessible(phone)
            # The PIN is chosen already: the window goes straight to the home page.
            _signed_in_as(window, "Lena Lab")
            _log_out(window)

        # 3. Offline: the server is stopped. The campus sign-in says it cannot reach it (and
        # the log-in page stops offering it); the PIN signs Lena in.
        window.get_by_role("button", name="Sign in with your campus account").click()
        expect(window.get_by_text("The campus server cannot be reached")).to_be_visible()
        expect(window.get_by_role("button", name="Sign in with your campus account")).to_have_count(
            0
        )
        assert opened.empty()
        window.get_by_role("link", name="Sign in with your offline PIN").click()
        save_screenshot(window, "campus-sign-in-06-pin-log-in")
        check_accessible(window)
        window.get_by_label("Username").fill("lena")
        window.get_by_label("Offline PIN").fill(PIN)
        window.get_by_role("button", name="Sign in with the PIN").click()
        _signed_in_as(window, "Lena Lab")
        _log_out(window)

        # Wrong PINs: after offline_failed_attempts (2 here) the account waits, then may try.
        window.goto(guard.origin + "/login/pin")
        for _attempt in range(2):
            window.get_by_label("Username").fill("lena")
            window.get_by_label("Offline PIN").fill("902817")
            window.get_by_role("button", name="Sign in with the PIN").click()
            expect(window.get_by_text("do not match an account of this computer")).to_be_visible()
        expect(
            window.get_by_text("Too many wrong tries for lena. Try again in 5 seconds")
        ).to_be_visible()
        window.get_by_label("Username").fill("lena")
        window.get_by_label("Offline PIN").fill(PIN)
        window.get_by_role("button", name="Sign in with the PIN").click()
        expect(window.get_by_text("Too many wrong tries for lena")).to_be_visible()
        clock.now += 6
        window.get_by_label("Username").fill("lena")
        window.get_by_label("Offline PIN").fill(PIN)
        window.get_by_role("button", name="Sign in with the PIN").click()
        _signed_in_as(window, "Lena Lab")
        _log_out(window)

        # After offline_sign_in_days without an online sign-in: refused, with why and what to do.
        with copy.app_context():
            lena_id = _db.session.scalar(select(User.id).where(User.username == "lena"))
            _db.session.execute(
                update(OfflinePin)
                .where(OfflinePin.user_id == lena_id)
                .values(online_at=utcnow() - timedelta(days=15))
            )
            _db.session.commit()
        window.goto(guard.origin + "/login/pin")
        window.get_by_label("Username").fill("lena")
        window.get_by_label("Offline PIN").fill(PIN)
        window.get_by_role("button", name="Sign in with the PIN").click()
        expect(window.get_by_text("more than 14 days ago")).to_be_visible()
        expect(window.get_by_text("Sign in with your campus account").first).to_be_visible()
        save_screenshot(window, "campus-sign-in-07-pin-expired")

        # 4. Deactivated on the server: refused on the copy after its next sync.
        with copy.app_context():
            _db.session.execute(
                update(OfflinePin).where(OfflinePin.user_id == lena_id).values(online_at=utcnow())
            )
            _db.session.commit()
        with serve(server, port=port):
            with server.app_context():
                db = _db.session
                capture.attribute_to(db, admin_id)
                lena = db.scalars(select(User).where(User.username == "lena")).one()
                set_active(db, lena, False, actor=db.get(User, admin_id))
                db.commit()
            runner.run()
        window.goto(guard.origin + "/login/pin")
        window.get_by_label("Username").fill("lena")
        window.get_by_label("Offline PIN").fill(PIN)
        window.get_by_role("button", name="Sign in with the PIN").click()
        expect(window.get_by_text("This account has been deactivated")).to_be_visible()
        for context in (window_context, system_context, phone_context):
            context.close()
    finally:
        runner.stop()
        embedded.stop()
    assert errors == []
    for app in (copy, server):
        with app.app_context():
            _db.session.remove()
            _db.engine.dispose()
