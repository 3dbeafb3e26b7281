"""Campus single sign-on (OIDC) on the central server against a real provider (npm's
oidc-provider, tests/auth/oidc_server.py), driven without a browser (the browser's side is
tests/browser/test_campus_sign_in.py): a confidential client's secret, the refusals (no role,
a local account of that name, deactivated, a username the portal cannot use, an ID token
whose signature does not verify or that was issued to another client), the password page
of a campus account, the log-in rate limit, and the settings."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import select

from portal.config import ConfigError, load_settings, read_config_file
from portal.extensions import db as _db
from portal.models import AuditEntry, User
from tests import factories
from tests.auth import oidc_server, records
from tests.auth.oidc_server import (
    ACCOUNTS,
    CLIENT_ID,
    GROUP_ROLES,
    OTHER_CLIENT_ID,
    IdentityProvider,
)
from tests.conftest import make_app, post_form

SECRET = "Client-Secret-For-The-Tests-7"  # noqa: S105
PASSWORD_URL = "https://password.campus.example/change"
CALLBACK = "http://localhost/login/oidc/callback"  # where the test client is served


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityProvider]:
    folder = tmp_path_factory.mktemp("oidc")
    yield from oidc_server.start_provider(folder, [CALLBACK], client_secret=SECRET)


def _server(tmp_path: Path, provider: IdentityProvider, **overrides: Any):  # type: ignore[no-untyped-def]
    settings: dict[str, Any] = {
        "MODE": "server",
        "SIGN_IN_METHODS": ["oidc", "local"],
        "OIDC_ISSUER": provider.issuer,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": SECRET,
        "OIDC_SCOPES": ["openid", "profile", "email", "groups"],
        "OIDC_GROUP_ROLES": GROUP_ROLES,
        "CAMPUS_PASSWORD_URL": PASSWORD_URL,
        "LOGIN_RATE_LIMIT": "100 per minute",
    }
    settings.update(overrides)
    return make_app(tmp_path, f"sqlite:///{tmp_path / 'server.db'}", **settings)


def _answer(  # type: ignore[no-untyped-def]
    client: FlaskClient,
    username: str,
    start_at: str = "/login/oidc",
    meanwhile: Callable[[], None] | None = None,
    verify: str | bool = True,
):
    """The whole code flow: the portal's redirect, the provider's log-in form (the account's
    password), and the portal's response to the provider's answer at its callback."""
    start = client.get(start_at)
    if start.status_code != 302:
        return start
    at_provider = requests.Session()
    at_provider.trust_env = False  # the browser's side: never through a test's proxy
    at_provider.verify = verify  # the CAs the browser trusts
    location = _through_the_provider(at_provider, start.headers["Location"], username)
    if meanwhile is not None:
        meanwhile()
    answer = urlsplit(location)
    return client.get(f"{answer.path}?{answer.query}")


def _through_the_provider(browser: requests.Session, location: str, username: str) -> str:
    """The browser's way from an authorization request through the provider's log-in form
    (the account's password) to the callback address with the answer."""
    while not location.startswith(CALLBACK):
        response = browser.get(location, allow_redirects=False, timeout=10)
        if response.status_code == 200:  # the provider's own log-in form
            form = re.search(r'action="([^"]+)"', response.text)
            assert form, response.text
            response = browser.post(
                urljoin(location, form.group(1)),
                data={"login": username, "password": ACCOUNTS[username]["password"]},
                allow_redirects=False,
                timeout=10,
            )
        assert response.status_code in (302, 303), response.text
        location = urljoin(location, response.headers["Location"])
    return location


def _sign_in(client: FlaskClient, username: str, verify: str | bool = True) -> tuple[int, str]:
    back = _answer(client, username, verify=verify)
    return back.status_code, back.get_data(as_text=True).replace("&#39;", "'")


def test_a_confidential_client_signs_in_and_its_secret_is_never_shown(tmp_path, provider, caplog):
    app = _server(tmp_path, provider)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert "Sign in with your campus account" in page
    assert "Or use the portal account you were given:" in page
    with caplog.at_level("DEBUG"):
        status, _ = _sign_in(client, "grace")
    assert status == 302  # the provider accepted the secret (client_secret_basic)
    grace = records.account(app, "grace")
    assert grace is not None and (grace.role, grace.account_source) == ("admin", "oidc")
    assert SECRET not in caplog.text
    assert "code_verifier" not in caplog.text  # Authlib's DEBUG line about it is dropped
    assert SECRET not in client.get("/healthz").get_data(as_text=True)
    with app.app_context():
        entries = _db.session.scalars(select(AuditEntry)).all()
        assert entries and all(SECRET not in repr((e.before, e.after, e.summary)) for e in entries)
    # A wrong secret: the provider refuses the portal, and the person is told plainly.
    (tmp_path / "wrong").mkdir()
    wrong = _server(tmp_path / "wrong", provider, OIDC_CLIENT_SECRET="Not-The-Secret-1")
    status, page = _sign_in(wrong.test_client(), "grace")
    assert status == 401
    assert "The campus sign-in service did not sign you in" in page


def test_the_page_asked_for_opens_after_the_sign_in(tmp_path, provider):
    app = _server(tmp_path, provider)
    client = app.test_client()
    page = client.get("/login?next=/courses").get_data(as_text=True)
    assert 'href="/login/oidc?next=/courses"' in page
    back = _answer(client, "alan", "/login/oidc?next=/courses")
    assert back.status_code == 302 and back.headers["Location"] == "/courses"
    # Only a page of the portal's own: elsewhere, the home page.
    back = _answer(app.test_client(), "alan", "/login/oidc?next=https://elsewhere.example/")
    assert back.status_code == 302 and back.headers["Location"] == "/"


def test_a_sign_in_started_more_than_10_minutes_ago_is_refused(tmp_path, provider):
    app = _server(tmp_path, provider)
    client = app.test_client()

    def ten_minutes_pass() -> None:  # the pending sign-in's expiry, as the session keeps it
        with client.session_transaction() as session:
            (key,) = [k for k in session if k.startswith("_state_campus_")]
            session[key] = session[key] | {"exp": session[key]["exp"] - 601}

    back = _answer(client, "alan", meanwhile=ten_minutes_pass)
    assert back.status_code == 400
    assert "more than 10 minutes old" in back.get_data(as_text=True)
    assert records.account(app, "alan") is None
    (failed,) = records.audit(app, "auth.login_failed")
    assert failed.after and failed.after["reason"] == "state expired"
    # Not expired, the same answer's sign-in would have gone through.
    assert _answer(app.test_client(), "alan").status_code == 302


class _TamperingProxy(http.server.BaseHTTPRequestHandler):
    """An HTTP proxy between the portal and the provider that breaks the signature of every ID
    token the provider's token endpoint hands out (the portal's requests go through it by the
    ordinary HTTP_PROXY variable)."""

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection")
        }
        upstream = requests.Session()
        upstream.trust_env = False
        answer = upstream.request(self.command, self.path, headers=headers, data=body, timeout=10)
        content = answer.content
        if urlsplit(self.path).path == "/token" and answer.ok:
            content = json.dumps(self.changed(answer.json())).encode()
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers.get("Content-Type", "text/plain"))
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def changed(self, token: dict[str, Any]) -> dict[str, Any]:
        head, payload, signature = token["id_token"].split(".")
        flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
        return token | {"id_token": f"{head}.{payload}.{flipped}"}

    do_GET = _forward
    do_POST = _forward

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


@contextlib.contextmanager
def _proxy(handler: type[http.server.BaseHTTPRequestHandler], monkeypatch) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The portal's requests to the provider go through `handler` (the HTTP_PROXY variable)."""
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        yield
    finally:
        monkeypatch.delenv("HTTP_PROXY")
        proxy.shutdown()
        proxy.server_close()


def test_an_id_token_whose_signature_does_not_verify_is_refused(tmp_path, provider, monkeypatch):
    with _proxy(_TamperingProxy, monkeypatch):
        app = _server(tmp_path, provider)
        status, page = _sign_in(app.test_client(), "alan")
    assert status == 400
    assert "This sign-in answer could not be verified" in page
    assert records.account(app, "alan") is None
    (failed,) = records.audit(app, "auth.login_failed")
    assert failed.after and failed.after["reason"] == "id_token: BadSignatureError"


def test_an_id_token_issued_to_another_client_is_refused(tmp_path, provider, monkeypatch):
    """The provider signs the ID tokens of every application of the campus with the same keys:
    one it issued to another client (campus-library), for the same person, the portal's nonce
    and a real code of that client, is refused by its audience, though all else is right."""
    app = _server(tmp_path, provider)
    client = app.test_client()
    start = client.get("/login/oidc")
    portal_authorize = start.headers["Location"]
    nonce = parse_qs(urlsplit(portal_authorize).query)["nonce"][0]
    # The other application's own sign-in of alan, with the portal's nonce.
    browser = requests.Session()
    browser.trust_env = False
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = urlencode(
        {
            "client_id": OTHER_CLIENT_ID,
            "redirect_uri": CALLBACK,
            "response_type": "code",
            "scope": "openid profile email groups",
            "nonce": nonce,
            "state": "library",
            "code_challenge": challenge.decode().rstrip("="),
            "code_challenge_method": "S256",
        }
    )
    location = _through_the_provider(browser, f"{provider.issuer}/auth?{query}", "alan")
    other = requests.post(
        f"{provider.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": parse_qs(urlsplit(location).query)["code"][0],
            "redirect_uri": CALLBACK,
            "client_id": OTHER_CLIENT_ID,
            "code_verifier": verifier,
        },
        timeout=10,
    )
    other.raise_for_status()
    others = other.json()
    claims = json.loads(base64.urlsafe_b64decode(others["id_token"].split(".")[1] + "=="))
    assert (claims["aud"], claims["nonce"], claims["sub"]) == (OTHER_CLIENT_ID, nonce, "alan")

    class Swapping(_TamperingProxy):
        def changed(self, token: dict[str, Any]) -> dict[str, Any]:
            return others  # the other client's answer, instead of the portal's

    with _proxy(Swapping, monkeypatch):
        answer = urlsplit(_through_the_provider(browser, portal_authorize, "alan"))
        back = client.get(f"{answer.path}?{answer.query}")
    assert back.status_code == 400
    assert "This sign-in answer could not be verified" in back.get_data(as_text=True)
    assert records.account(app, "alan") is None
    (failed,) = records.audit(app, "auth.login_failed")
    assert failed.after and failed.after["reason"] == "id_token: aud"
    # The same steps without the swap: the portal's own token signs alan in.
    assert _answer(app.test_client(), "alan").status_code == 302


def test_no_mapped_group_is_refused_where_student_has_a_group(tmp_path, provider):
    roles = GROUP_ROLES | {"student": "students"}
    app = _server(tmp_path, provider, OIDC_GROUP_ROLES=roles)
    status, page = _sign_in(app.test_client(), "linus")  # only in "visitors"
    assert status == 403
    assert "Your campus account is not in a group that may use the portal." in page
    assert records.account(app, "linus") is None
    (failed,) = records.audit(app, "auth.login_failed")
    assert failed.after and failed.after["username"] == "linus"
    assert "not in a group" in failed.after["reason"]
    assert _sign_in(app.test_client(), "ada")[0] == 302
    ada = records.account(app, "ada")
    assert ada is not None and ada.role == "student"


def test_a_local_account_of_that_name_is_not_taken_over(tmp_path, provider):
    app = _server(tmp_path, provider)
    with app.app_context():
        factories.make_user(_db.session, "admin", username="ada")
        _db.session.commit()
    status, page = _sign_in(app.test_client(), "ada")
    assert status == 403
    assert "The portal has a local account named ada" in page
    ada = records.account(app, "ada")
    assert ada is not None and (ada.account_source, ada.role) == ("local", "admin")


def test_a_directory_account_of_that_name_signs_in_its_own_way(tmp_path, provider):
    app = _server(tmp_path, provider)
    with app.app_context():
        factories.make_user(_db.session, "instructor", username="alan", account_source="ldap")
        _db.session.commit()
    status, page = _sign_in(app.test_client(), "alan")
    assert status == 403
    assert "The portal account alan signs in the other campus way" in page
    alan = records.account(app, "alan")
    assert alan is not None and alan.account_source == "ldap"


@pytest.mark.postgres
def test_single_sign_on_on_postgresql(tmp_path, provider, postgres_url):
    """The central server's own database: the account is created, then brought up to date."""
    app = _server(tmp_path, provider, DATABASE_URL=postgres_url)
    assert _sign_in(app.test_client(), "alan")[0] == 302
    provider.set_groups("alan", ["portal-admins"])
    try:
        assert _sign_in(app.test_client(), "alan")[0] == 302
    finally:
        provider.set_groups("alan", ACCOUNTS["alan"]["groups"])
    alan = records.account(app, "alan")
    assert alan is not None and (alan.account_source, alan.role) == ("oidc", "admin")
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()


def test_a_deactivated_campus_account_is_refused(tmp_path, provider):
    app = _server(tmp_path, provider)
    client = app.test_client()
    assert _sign_in(client, "alan")[0] == 302
    with app.app_context():
        alan = _db.session.scalar(select(User).where(User.username == "alan"))
        assert alan is not None
        alan.active = False
        _db.session.commit()
    assert client.get("/").status_code == 302  # the open session ends
    status, page = _sign_in(app.test_client(), "alan")
    assert status == 403
    assert "This account has been deactivated in the portal." in page


def test_a_username_the_portal_cannot_use_is_refused(tmp_path, provider):
    app = _server(tmp_path, provider, OIDC_USERNAME_CLAIM="email")  # "ada@campus.example"
    status, page = _sign_in(app.test_client(), "ada")
    assert status == 403
    assert "did not give a username the portal can use" in page
    assert "Start the campus sign-in again" not in page  # it would end the same way


def test_a_campus_account_changes_its_password_on_campus(tmp_path, provider):
    app = _server(tmp_path, provider)
    client = app.test_client()
    assert _sign_in(client, "alan")[0] == 302
    page = client.get("/password").get_data(as_text=True)
    assert "your password is your campus password" in page
    assert f'<a href="{PASSWORD_URL}"' in page
    assert 'name="new_password"' not in page
    refused = post_form(
        client,
        "/password",
        {
            "current_password": "anything-at-all",
            "new_password": "Brand-New-Password-77",
            "confirm": "Brand-New-Password-77",
        },
        token_from="/password",
    )
    assert refused.status_code == 422
    assert PASSWORD_URL in refused.get_data(as_text=True)
    alan = records.account(app, "alan")
    assert alan is not None and alan.password_hash == "!"  # no password here at all


def test_the_log_in_rate_limit_holds_for_single_sign_on(tmp_path, provider):
    app = _server(tmp_path, provider, LOGIN_RATE_LIMIT="3 per minute")
    client = app.test_client()
    wrong = {"username": "nobody", "password": "Wrong-Password-1"}
    assert post_form(client, "/login", wrong).status_code == 401
    assert client.get("/login/oidc").status_code == 302  # off to the provider
    assert client.get("/login/oidc/callback?code=x&state=y").status_code == 400
    for path in ("/login/oidc", "/login/oidc/callback?code=x&state=y"):
        limited = client.get(path)
        assert limited.status_code == 429, path
        assert "Too many log-in attempts from this address" in limited.get_data(as_text=True)
    assert post_form(client, "/login", wrong).status_code == 429


def test_single_sign_on_is_not_there_unless_it_is_a_sign_in_method(tmp_path):
    app = make_app(
        tmp_path, f"sqlite:///{tmp_path / 's.db'}", MODE="server", SIGN_IN_METHODS=["local"]
    )
    client = app.test_client()
    assert "Sign in with your campus account" not in client.get("/login").get_data(as_text=True)
    assert client.get("/login/oidc").status_code == 404
    assert client.get("/login/oidc/callback?code=x&state=y").status_code == 404


def _settings(tmp_path: Path, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "DATA_DIR": str(tmp_path),
        "MODE": "server",
        "DATABASE_URL": "sqlite://",
        "SECRET_KEY": "x" * 32,
        "SIGN_IN_METHODS": ["oidc"],
        "OIDC_ISSUER": "https://login.campus.example/realms/campus",
        "OIDC_CLIENT_ID": "portal",
    }
    return load_settings(base | values)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"MODE": "desktop"}, "oidc is for the central server"),
        ({"OIDC_ISSUER": "http://login.campus.example"}, "plain http is only for a provider on"),
        ({"OIDC_ISSUER": "login.campus.example"}, "must be an https:// address"),
        ({"OIDC_CLIENT_ID": ""}, "set oidc_client_id"),
        ({"OIDC_SCOPES": ["profile", "email"]}, "oidc_scopes must include openid"),
        ({"OIDC_GROUP_ROLES": {"dean": "deans"}}, "'dean' is not a portal role"),
        ({"CAMPUS_PASSWORD_URL": "password.campus.example"}, "campus_password_url must be"),
        ({"OIDC_CA_FILE": "/nonexistent/campus-ca.pem"}, "oidc_ca_file /nonexistent/campus"),
    ],
)
def test_settings_that_cannot_work_stop_the_start(tmp_path, values, problem):
    with pytest.raises(ConfigError, match=re.escape(problem)):
        _settings(tmp_path, **values)


def test_settings_that_work(tmp_path):
    settings = _settings(tmp_path, OIDC_ISSUER="http://127.0.0.1:8080")
    assert settings["OIDC_SCOPES"] == ["openid", "profile", "email"]
    assert settings["OIDC_USERNAME_CLAIM"] == "preferred_username"
    assert settings["OIDC_GROUPS_CLAIM"] == "groups"
    assert _settings(tmp_path, CAMPUS_PASSWORD_URL=PASSWORD_URL)["CAMPUS_PASSWORD_URL"]


def test_the_client_secret_comes_from_the_environment_or_a_private_file(tmp_path, monkeypatch):
    file_text = tmp_path / "config.toml"
    file_text.write_text(f'oidc_client_secret = "{SECRET}"\n')
    with pytest.raises(ConfigError, match="unknown setting 'oidc_client_secret'"):
        read_config_file(file_text)
    monkeypatch.setenv("PORTAL_OIDC_CLIENT_SECRET", SECRET)
    assert _settings(tmp_path)["OIDC_CLIENT_SECRET"] == SECRET
    monkeypatch.delenv("PORTAL_OIDC_CLIENT_SECRET")
    secret = tmp_path / "oidc-secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o644)
    if os.name == "posix":
        with pytest.raises(ConfigError, match="may be read by other accounts"):
            _settings(tmp_path, OIDC_CLIENT_SECRET_FILE=str(secret))
    secret.chmod(0o600)
    assert _settings(tmp_path, OIDC_CLIENT_SECRET_FILE=str(secret))["OIDC_CLIENT_SECRET"] == SECRET


def test_a_provider_certified_by_the_campus_ca_is_trusted_by_oidc_ca_file(
    tmp_path_factory, monkeypatch
):
    """A provider over TLS whose certificate a campus CA issued (not in the system's store):
    refused as unreachable without oidc_ca_file (nothing is sent to it), trusted with it, even
    where REQUESTS_CA_BUNDLE names another bundle."""
    import trustme

    folder = tmp_path_factory.mktemp("oidc-tls")
    authority = trustme.CA(organization_name="Campus University Test CA")
    certificate = authority.issue_cert("127.0.0.1")
    ca, cert, key = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    authority.cert_pem.write_to_path(str(ca))
    certificate.cert_chain_pems[0].write_to_path(str(cert))
    certificate.private_key_pem.write_to_path(str(key))
    provider = oidc_server.start_provider(folder, [CALLBACK], client_secret=SECRET, tls=(cert, key))
    tls_provider = next(provider)
    try:
        assert tls_provider.issuer.startswith("https://127.0.0.1:")
        (folder / "untrusted").mkdir()
        untrusted = _server(folder / "untrusted", tls_provider)
        back = untrusted.test_client().get("/login/oidc")
        assert back.status_code == 503
        assert "The campus sign-in service cannot be reached" in back.get_data(as_text=True)

        other = trustme.CA(organization_name="Some Other CA")
        other.cert_pem.write_to_path(str(folder / "other.pem"))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(folder / "other.pem"))
        (folder / "trusted").mkdir()
        trusted = _server(folder / "trusted", tls_provider, OIDC_CA_FILE=str(ca))
        status, _page = _sign_in(trusted.test_client(), "alan", verify=str(ca))
        assert status == 302
        alan = records.account(trusted, "alan")
        assert alan is not None and alan.account_source == "oidc"
    finally:
        provider.close()
