"""Log-in, log-out, CSRF, rate limiting, redirects, idle log-out and security headers."""

from __future__ import annotations

import re
import time

import pytest

from portal.auth import login_throttle
from portal.extensions import db as _db
from tests import factories
from tests.conftest import csrf_token, make_app, post_form
from tests.forms import rendered_form


def _create(app, role="student", **fields):
    with app.app_context():
        user = factories.make_user(_db.session, role, **fields)
        _db.session.commit()
        return user.username


def test_login_with_right_password_then_logout(app, client):
    username = _create(app)
    response = post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    assert response.status_code == 302
    assert client.get("/registrations").status_code == 200
    response = post_form(client, "/logout", token_from="/registrations")
    assert response.status_code == 302
    assert client.get("/registrations").status_code == 302  # back to the log-in page


def test_wrong_password_gives_one_message_for_both_cases(app, client):
    username = _create(app)
    wrong = post_form(client, "/login", {"username": username, "password": "nope-nope"})
    unknown = post_form(client, "/login", {"username": "ghost", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    message = "do not match an active account"
    assert message in wrong.get_data(as_text=True)
    assert message in unknown.get_data(as_text=True)


def test_deactivated_account_cannot_log_in(app, client):
    username = _create(app, active=False)
    response = post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    assert response.status_code == 401


def test_deactivation_ends_an_open_session(app, client):
    username = _create(app)
    post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    with app.app_context():
        from portal.models import User

        user = _db.session.query(User).filter_by(username=username).one()
        user.active = False
        _db.session.commit()
    assert client.get("/registrations").status_code == 302


def test_login_form_without_csrf_token_is_refused(app, client):
    username = _create(app)
    response = client.post("/login", data={"username": username, "password": factories.PASSWORD})
    assert response.status_code == 400


def test_state_changing_post_without_csrf_is_refused(app, client, login_as):
    login_as("admin")
    other = _create(app)
    with app.app_context():
        from portal.models import User

        user_id = _db.session.query(User).filter_by(username=other).one().id
    response = client.post(f"/admin/users/{user_id}/active", data={"active": "0"})
    assert response.status_code == 400


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"],
)
def test_next_parameter_cannot_redirect_off_site(app, client, target):
    username = _create(app)
    token = csrf_token(client, "/login")
    response = client.post(
        "/login",
        data={
            "csrf_token": token,
            "username": username,
            "password": factories.PASSWORD,
            "next": target,
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_next_parameter_keeps_local_paths(app, client):
    username = _create(app)
    token = csrf_token(client, "/login")
    response = client.post(
        "/login",
        data={
            "csrf_token": token,
            "username": username,
            "password": factories.PASSWORD,
            "next": "/courses?q=phy",
        },
    )
    assert response.headers["Location"] == "/courses?q=phy"


def test_the_central_server_limits_log_ins_per_address_and_shows_the_form_again(tmp_path):
    app = make_app(
        tmp_path,
        f"sqlite:///{tmp_path / 'server.db'}",
        MODE="server",
        LOGIN_RATE_LIMIT="3 per minute",
    )
    client = app.test_client()
    username = _create(app)
    statuses = [
        post_form(client, "/login", {"username": username, "password": "wrong-pass"}).status_code
        for _ in range(3)
    ]
    assert statuses == [401, 401, 401]
    refused = post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    assert refused.status_code == 429
    page = refused.get_data(as_text=True)
    message = re.search(
        r"Too many log-in attempts from this address\. Try again in (\d+) seconds?\.", page
    )
    assert message and 1 <= int(message.group(1)) <= 60
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    form = rendered_form(refused, action="/login")  # the form, not a bare error page
    assert form.values["username"] == [username]
    assert {"csrf_token", "username", "password"} <= form.names


class _Clock:
    """The throttle's clock, moved on by the test instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _try(client, username, password):
    response = post_form(client, "/login", {"username": username, "password": password})
    return response.status_code, response.get_data(as_text=True).replace("&#39;", "'")


def _wait_said(page: str, username: str) -> str | None:
    found = re.search(rf"Too many wrong passwords for {username}\. Try again in ([^.]+)\.", page)
    return found.group(1) if found else None


def test_a_desktop_limits_wrong_passwords_per_account_with_a_growing_wait(tmp_path):
    """A shared lab PC: one person mistypes again and again; their account waits longer each
    time, while the next person at the same PC (same address) signs in at once."""
    app = make_app(tmp_path, LOGIN_RATE_LIMIT="3 per minute")  # the server's; not the desktop's
    clock = _Clock()
    app.extensions[login_throttle.EXTENSION].clock = clock
    typist, colleague = _create(app), _create(app)
    first, second = app.test_client(), app.test_client()

    for _ in range(4):  # typos cost nothing
        status, page = _try(first, typist, "wrong-pass")
        assert status == 401 and _wait_said(page, typist) is None
    status, page = _try(first, typist, "wrong-pass")
    assert status == 401 and _wait_said(page, typist) == "5 seconds"

    # Waiting: even the right password is not tried yet; the form is there, saying when.
    refused = post_form(first, "/login", {"username": typist, "password": factories.PASSWORD})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "5"
    assert _wait_said(refused.get_data(as_text=True), typist) == "5 seconds"
    form = rendered_form(refused, action="/login")
    assert form.values["username"] == [typist]

    # The colleague at the same PC signs in meanwhile.
    status, _ = _try(second, colleague, factories.PASSWORD)
    assert status == 302
    assert second.get("/registrations").status_code == 200

    wait = 5
    said = []
    for next_wait in (10, 20, 40, 80, 160):
        clock.now += wait - 1
        status, page = _try(first, typist, "wrong-pass")
        assert status == 429 and _wait_said(page, typist) == "1 second"  # not tried
        clock.now += 1
        status, page = _try(first, typist, "wrong-pass")
        assert status == 401  # tried, and wrong again: a longer wait
        said.append(_wait_said(page, typist))
        wait = next_wait
    assert said == ["10 seconds", "20 seconds", "40 seconds", "80 seconds", "3 minutes"]

    clock.now += wait
    status, _ = _try(first, typist, factories.PASSWORD)
    assert status == 302  # the right password, once the wait is over
    post_form(first, "/logout", token_from="/registrations")
    status, page = _try(first, typist, "wrong-pass")
    assert status == 401 and _wait_said(page, typist) is None  # the count starts again


def test_it_sets_how_many_wrong_passwords_cost_nothing_on_a_desktop(tmp_path):
    app = make_app(tmp_path, OFFLINE_FAILED_ATTEMPTS=2)
    app.extensions[login_throttle.EXTENSION].clock = _Clock()
    typist = _create(app)
    client = app.test_client()
    status, page = _try(client, typist, "wrong-pass")
    assert status == 401 and _wait_said(page, typist) is None
    status, page = _try(client, typist, "wrong-pass")
    assert status == 401 and _wait_said(page, typist) == "5 seconds"
    assert _try(client, typist, factories.PASSWORD)[0] == 429


def test_the_waits_grow_to_a_cap():
    waits = [login_throttle.wait_after(failures) for failures in range(1, 20)]
    assert waits[:4] == [0, 0, 0, 0]
    assert waits[4:8] == [5, 10, 20, 40]
    assert waits == sorted(waits)
    assert max(waits) == login_throttle.LONGEST_WAIT_SECONDS == waits[-1]


def test_idle_session_is_logged_out(tmp_path):
    app = make_app(tmp_path, IDLE_LOGOUT_MINUTES=1)
    client = app.test_client()
    username = _create(app)
    post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    assert client.get("/registrations").status_code == 200
    with client.session_transaction() as session:
        session["last_seen"] = time.time() - 61
    response = client.get("/registrations")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_an_htmx_request_after_the_idle_log_out_takes_the_page_to_the_login_screen(tmp_path):
    """A running import's page polls (passive, so the session does run out): the poll that finds
    it over sends the whole page to the log-in screen, which says why."""
    app = make_app(tmp_path, IDLE_LOGOUT_MINUTES=1)
    client = app.test_client()
    username = _create(app)
    post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    with client.session_transaction() as session:
        session["last_seen"] = time.time() - 61
    response = client.get("/registrations", headers={"HX-Request": "true"})
    assert (response.status_code, response.headers["HX-Redirect"]) == (401, "/login")
    page = client.get("/login").get_data(as_text=True)
    assert "You were logged out after a period of inactivity." in page
    assert "Please log in to see that page." not in page


def test_session_cookie_flags(app, client):
    username = _create(app)
    response = post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie


def test_security_headers_on_every_page(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_the_opener_policy_is_sent_by_the_server_and_not_to_the_desktop_window(tmp_path, client):
    """Cross-Origin-Opener-Policy on the central server; the desktop leaves it out (WebKit
    would start a second web process for the window's first page: see auth/policy.py)."""
    from tests.conftest import make_app

    assert "Cross-Origin-Opener-Policy" not in client.get("/login").headers
    server = make_app(tmp_path / "server", f"sqlite:///{tmp_path / 'server.db'}", MODE="server")
    response = server.test_client().get("/login")
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_pages_have_no_inline_script(client):
    body = client.get("/login").get_data(as_text=True)
    for chunk in body.split("<script")[1:]:
        assert "src=" in chunk.split(">")[0], "inline <script> found; the CSP would block it"


BOOTSTRAP_SCRIPT = "vendor/bootstrap/bootstrap.bundle.min.js"
HTMX_SCRIPT = "vendor/htmx/htmx.min.js"


def test_the_log_in_page_loads_only_the_scripts_it_uses(app, client):
    """htmx and Bootstrap's script are for signed-in pages; a flashed message's alert is the
    one thing a signed-out page closes with Bootstrap's script."""
    username = _create(app)
    page = client.get("/login").get_data(as_text=True)
    assert "bootstrap.min.css" in page and "js/portal.js" in page
    assert BOOTSTRAP_SCRIPT not in page and HTMX_SCRIPT not in page
    refused = post_form(client, "/login", {"username": "ghost", "password": "nope-nope"})
    refused_page = refused.get_data(as_text=True)
    assert 'data-bs-dismiss="alert"' in refused_page and BOOTSTRAP_SCRIPT in refused_page
    assert HTMX_SCRIPT not in refused_page
    post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    signed_in = client.get("/registrations").get_data(as_text=True)
    assert BOOTSTRAP_SCRIPT in signed_in and HTMX_SCRIPT in signed_in


def test_view_without_access_declaration_is_refused(tmp_path):
    app = make_app(tmp_path)

    @app.get("/undeclared")
    def undeclared():
        return "should never be seen"

    assert app.test_client().get("/undeclared").status_code == 403


def test_password_is_stored_with_argon2(app):
    with app.app_context():
        user = factories.make_user(_db.session, "student", password="something-long")
        assert user.password_hash.startswith("$argon2")


def test_the_log_in_form_as_rendered_has_exactly_the_fields_the_route_reads(app, client):
    """tests/forms.py fills forms as the page renders them: a field the template does not have
    cannot be filled, so renaming one fails the tests that log in."""
    with app.app_context():
        factories.make_user(_db.session, "student")  # with no account, /login is the first run
        _db.session.commit()
    form = rendered_form(client.get("/login"), action="/login")
    assert {"csrf_token", "username", "password"} <= form.names
    assert form.method == "post" and form.values["csrf_token"][0]
    with pytest.raises(KeyError, match="no field 'user_name'"):
        form.fill(user_name="x")


def _session_ended_by_the_server(tmp_path):
    """A signed-in client whose session a passive poll found idle and ended (with the form's
    CSRF secret), its username, and the CSRF token its page still holds."""
    app = make_app(tmp_path, IDLE_LOGOUT_MINUTES=1, WTF_CSRF_ENABLED=True)
    client = app.test_client()
    username = _create(app)
    post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    token = csrf_token(client, "/registrations")
    with client.session_transaction() as session:
        session["last_seen"] = time.time() - 61
    client.get("/sync/status.json")  # a passive poll: the server ends the session
    return client, username, token


def test_logging_out_of_a_session_the_server_already_ended_goes_to_the_login_screen(tmp_path):
    """The page's idle timer posts the log-out form after the server has ended the session (a
    poll found it idle) and with it the form's CSRF secret: the log-in screen, not a 400."""
    client, username, token = _session_ended_by_the_server(tmp_path)
    response = client.post("/logout", data={"csrf_token": token, "reason": "idle"})
    assert (response.status_code, response.headers["Location"]) == (302, "/login")
    page = client.get("/login").get_data(as_text=True)
    assert page.count("You were logged out after a period of inactivity.") == 1

    # A signed-in session with a bad token is still refused: a forged log-out is not granted.
    post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/registrations").status_code == 200


def test_a_log_out_click_after_the_session_ended_keeps_the_servers_message(tmp_path):
    """Clicked in two tabs after the server ended the session: the log-in page says why the
    session ended (the message waiting since) and "You are logged out.", each once."""
    client, _, token = _session_ended_by_the_server(tmp_path)
    for _ in range(2):
        response = client.post("/logout", data={"csrf_token": token})
        assert (response.status_code, response.headers["Location"]) == (302, "/login")
    page = client.get("/login").get_data(as_text=True)
    assert page.count("You were logged out after a period of inactivity.") == 1
    assert page.count("You are logged out.") == 1
