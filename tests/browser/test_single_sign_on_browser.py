"""Campus single sign-on in Chromium, through a real OpenID Connect provider (npm's
oidc-provider, tests/auth/oidc_server.py) and its own log-in form: the first sign-in creates
the account with the role of its groups, a changed group changes the role at the next one, and
a wrong state, a replayed code, a nonce that does not match, a cancelled sign-in and a provider
that is down each end on a page in plain words, with nothing signed in."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import pytest
from flask_migrate import upgrade
from playwright.sync_api import expect
from sqlalchemy import select

from portal import create_app
from portal.extensions import db as _db
from portal.models import AuditEntry, User
from tests import factories
from tests.auth import oidc_server
from tests.auth.oidc_server import ACCOUNTS, CLIENT_ID, GROUP_ROLES, IdentityProvider
from tests.browser.conftest import LiveServer, live_portal_app, serve

pytestmark = pytest.mark.browser

PASSWORD_URL = "https://password.campus.example/change"
BUTTON = "Sign in with your campus account"
PROVIDER_FORM = "**/interaction/*/login"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _sso_settings(issuer: str) -> dict[str, Any]:
    return {
        "MODE": "server",
        "SIGN_IN_METHODS": ["oidc", "local"],
        "OIDC_ISSUER": issuer,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_SCOPES": ["openid", "profile", "email", "groups"],
        "OIDC_GROUP_ROLES": GROUP_ROLES,
        "CAMPUS_PASSWORD_URL": PASSWORD_URL,
    }


@pytest.fixture(scope="module")
def portal_port() -> int:
    return _free_port()


@pytest.fixture(scope="module")
def provider(
    tmp_path_factory: pytest.TempPathFactory, portal_port: int
) -> Iterator[IdentityProvider]:
    callback = f"http://127.0.0.1:{portal_port}/login/oidc/callback"
    yield from oidc_server.start_provider(tmp_path_factory.mktemp("oidc"), [callback])


@pytest.fixture(scope="module")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, provider: IdentityProvider, portal_port: int
) -> Iterator[LiveServer]:
    """The central server (demo data), its log-in page offering the campus sign-in."""
    app = live_portal_app(tmp_path_factory.mktemp("sso-portal"), **_sso_settings(provider.issuer))
    with serve(app, port=portal_port) as url:
        yield LiveServer(url=url, app=app)
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()


def _account(live_server: LiveServer, username: str) -> User | None:
    with live_server.session() as db:
        user = db.scalar(select(User).where(User.username == username))
        if user is not None:
            db.expunge(user)
        return user


def _audit(live_server: LiveServer, action: str) -> list[AuditEntry]:
    with live_server.session() as db:
        entries = list(db.scalars(select(AuditEntry).where(AuditEntry.action == action)))
        for entry in entries:
            db.expunge(entry)
        return entries


def _at_provider(page: Any, username: str, password: str | None = None) -> None:
    """The provider's own log-in form, filled in like a person would."""
    expect(page.get_by_role("heading", name="Campus Identity Provider")).to_be_visible()
    page.get_by_label("Campus username").fill(username)
    page.get_by_label("Password").fill(password or ACCOUNTS[username]["password"])
    page.get_by_role("button", name="Sign in to campus").click()


def _campus_sign_in(page: Any, username: str) -> None:
    page.goto("/login")
    page.get_by_role("link", name=BUTTON).click()
    _at_provider(page, username)
    page.wait_for_load_state()


def _problem(page: Any) -> str:
    return str(page.locator("[data-problem]").inner_text())


def test_the_first_campus_sign_in_creates_the_account_with_its_groups_role(
    page, live_server, assert_accessible
):
    page.goto("/login")
    assert_accessible(page)
    page.get_by_role("link", name=BUTTON).click()
    _at_provider(page, "alan", "Not-Alans-Password-1")  # the provider's own check
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    _at_provider(page, "alan")
    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/"))
    expect(page.get_by_text("Alan Turing").first).to_be_visible()
    alan = _account(live_server, "alan")
    assert alan is not None
    assert (alan.full_name, alan.email, alan.role, alan.account_source) == (
        "Alan Turing",
        "alan@campus.example",
        "instructor",
        "oidc",
    )
    (created,) = [
        e for e in _audit(live_server, "account.directory_create") if e.actor_id == alan.id
    ]
    assert created.after == {
        "full_name": "Alan Turing",
        "email": "alan@campus.example",
        "role": "instructor",
    }
    logins = [e for e in _audit(live_server, "auth.login") if e.actor_id == alan.id]
    assert logins and logins[-1].after and logins[-1].after["method"] == "oidc"
    # The password is the campus's: the page says where it is changed, and offers no form.
    page.goto("/password")
    expect(page.locator("#campus-password")).to_contain_text("your password is your campus")
    expect(page.get_by_role("link", name=PASSWORD_URL)).to_have_attribute("href", PASSWORD_URL)
    expect(page.get_by_label("New password")).to_have_count(0)


def test_a_changed_group_changes_the_role_at_the_next_sign_in(
    page, new_page, live_server, provider
):
    _campus_sign_in(page, "grace")
    grace = _account(live_server, "grace")
    assert grace is not None and grace.role == "admin"  # portal-admins and teaching-staff
    provider.set_groups("grace", ["teaching-staff"])
    try:
        other = new_page()
        _campus_sign_in(other, "grace")
        expect(other).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/"))
        grace = _account(live_server, "grace")
        assert grace is not None and grace.role == "instructor"
    finally:
        provider.set_groups("grace", ACCOUNTS["grace"]["groups"])
    updates = [e for e in _audit(live_server, "account.directory_update") if e.actor_id == grace.id]
    assert [(u.before, u.after) for u in updates] == [({"role": "admin"}, {"role": "instructor"})]


def _rewrite(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | params
    return urlunsplit(parts._replace(query=urlencode(query)))


def _intercept(page: Any, pattern: str, stop: Callable[[str], bool], change: Callable[[str], str]):
    """What an attacker between the browser and the portal would do: the request `pattern` (one
    the browser makes itself: Playwright does not route redirects) is sent here, its redirects
    followed (with the browser's cookies) up to the first address `stop` accepts, and the
    browser is sent on to `change(that address)`. Returns the addresses met there."""
    met: list[str] = []

    def handle(route: Any) -> None:
        response = route.fetch(max_redirects=0)
        location = urljoin(route.request.url, response.headers["location"])
        while not stop(location):
            step = page.context.request.get(location, max_redirects=0)
            location = urljoin(location, step.headers["location"])
        met.append(location)
        route.fulfill(status=303, headers={"location": change(location)})

    page.route(pattern, handle)
    return met


def _is_callback(url: str) -> bool:
    return "/login/oidc/callback?" in url


def test_an_answer_with_a_wrong_state_is_refused(page, live_server):
    _intercept(page, PROVIDER_FORM, _is_callback, lambda url: _rewrite(url, state="forged"))
    _campus_sign_in(page, "ada")
    expect(page.get_by_role("heading", name="This sign-in was not started here")).to_be_visible()
    assert "Nothing was changed" in _problem(page)
    assert _account(live_server, "ada") is None
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))  # not signed in
    failed = [e.after or {} for e in _audit(live_server, "auth.login_failed")]
    assert {"method": "oidc", "reason": "state"}.items() <= failed[-1].items()


def test_a_replayed_code_is_refused(page, context, live_server):
    answers = _intercept(page, PROVIDER_FORM, _is_callback, lambda url: url)
    _campus_sign_in(page, "linus")  # in no mapped group: a student
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    linus = _account(live_server, "linus")
    assert linus is not None and linus.role == "student"
    used = answers[-1]
    page.unroute(PROVIDER_FORM)
    # The same answer again, in a browser without that sign-in (its session is gone).
    context.clear_cookies(name="portal_session")
    page.goto(used)
    expect(page.get_by_role("heading", name="This sign-in was not started here")).to_be_visible()
    # A sign-in started in this browser (its state is this browser's) answered with the used
    # code: the provider refuses the code a second time.
    fresh_state = lambda url: _rewrite(used, state=dict(parse_qsl(urlsplit(url).query))["state"])  # noqa: E731
    _intercept(page, "**/login/oidc", _is_callback, fresh_state)
    page.goto("/login")
    page.get_by_role("link", name=BUTTON).click()  # the provider still knows linus: no form
    heading = "This sign-in answer was already used"
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    failed = [e.after or {} for e in _audit(live_server, "auth.login_failed")]
    assert failed[-1].get("reason") == "invalid_grant"


def test_an_id_token_with_another_nonce_is_refused(page, live_server, provider):
    at_provider = lambda url: url.startswith(provider.issuer)  # noqa: E731
    _intercept(page, "**/login/oidc", at_provider, lambda url: _rewrite(url, nonce="other"))
    _campus_sign_in(page, "grace")
    expect(page.get_by_role("heading", name="This sign-in answer does not match")).to_be_visible()
    failed = [e.after or {} for e in _audit(live_server, "auth.login_failed")]
    assert failed[-1].get("reason") == "nonce"
    page.unroute("**/login/oidc")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))  # not signed in
    # Started again without the tampering, the same person signs in.
    page.get_by_role("link", name=BUTTON).click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def test_a_cancelled_sign_in_says_so(page, live_server, assert_accessible):
    page.goto("/login")
    page.get_by_role("link", name=BUTTON).click()
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", name="Sign-in cancelled")).to_be_visible()
    assert "You are not signed in" in _problem(page)
    assert_accessible(page)
    page.get_by_role("link", name="Back to the log-in page").click()
    expect(page.get_by_role("link", name=BUTTON)).to_be_visible()


def test_a_provider_that_is_down_stops_campus_sign_in_only(browser, tmp_path):
    """Local accounts keep signing in; the log-in rate limit counts both ways of signing in."""
    closed = _free_port()  # nothing listens there
    settings = _sso_settings(f"http://127.0.0.1:{closed}") | {"LOGIN_RATE_LIMIT": "3 per minute"}
    app = create_app(
        {
            "DATA_DIR": str(tmp_path / "data"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}",
            "SECRET_KEY": "browser-test-secret-key",
            **settings,
        }
    )
    with app.app_context():
        upgrade()
        factories.make_user(_db.session, "admin", username="breakglass")
        _db.session.commit()
        _db.session.remove()
    with serve(app) as url:
        context = browser.new_context(base_url=url)
        try:
            page = context.new_page()
            page.goto("/login")
            page.get_by_role("link", name=BUTTON).click()
            heading = "The campus sign-in service cannot be reached"
            expect(page.get_by_role("heading", name=heading)).to_be_visible()
            assert "Try again in a few minutes" in _problem(page)
            assert "Traceback" not in page.content()
            page.get_by_role("link", name="Back to the log-in page").click()
            page.get_by_label("Username").fill("breakglass")
            page.get_by_label("Password").fill(factories.PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("button", name="Log out")).to_be_visible()
            page.get_by_role("button", name="Log out").click()
            page.get_by_role("link", name=BUTTON).click()  # the third attempt a minute
            expect(page.get_by_role("heading", name=heading)).to_be_visible()
            page.goto("/login")
            page.get_by_role("link", name=BUTTON).click()
            expect(page.get_by_text("Too many log-in attempts from this address")).to_be_visible()
        finally:
            context.close()
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()
