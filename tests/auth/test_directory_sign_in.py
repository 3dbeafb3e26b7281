"""Campus sign-in on the central server against a real OpenLDAP directory (tests/auth/ldap_server):
right and wrong passwords, a locked account, groups to roles (and a changed group at the next
sign-in), a directory that is down, a certificate that is not trusted, StartTLS and the search
with a service account, the password page of a directory account, and the log-in rate limit."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from sqlalchemy import select

from portal.accounts.services import password_matches
from portal.extensions import db as _db
from portal.models import User
from tests import factories
from tests.auth import ldap_server, records
from tests.auth.ldap_server import PASSWORDS, Directory, group_dn
from tests.conftest import make_app, post_form

GROUP_ROLES = {
    "admin": group_dn("portal-admins"),
    "instructor": group_dn("teaching-staff"),
}


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Directory]:
    yield from ldap_server.start_directory(tmp_path_factory.mktemp("ldap"))


def _server(  # type: ignore[no-untyped-def]
    tmp_path: Path, directory: Directory, database_url: str = "", **overrides: Any
):
    settings: dict[str, Any] = {
        "MODE": "server",
        "SIGN_IN_METHODS": ["ldap", "local"],
        "LDAP_URL": directory.ldaps_url,
        "LDAP_CA_FILE": str(directory.ca_file),
        "LDAP_USER_DN_TEMPLATE": f"uid={{username}},{ldap_server.PEOPLE}",
        "LDAP_GROUP_ROLES": GROUP_ROLES,
        "LOGIN_RATE_LIMIT": "100 per minute",
    }
    settings.update(overrides)
    return make_app(tmp_path, database_url or f"sqlite:///{tmp_path / 'server.db'}", **settings)


def _sign_in(client, username: str, password: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    response = post_form(client, "/login", {"username": username, "password": password})
    return response.status_code, response.get_data(as_text=True).replace("&#39;", "'")


def test_the_first_campus_sign_in_creates_the_account_from_the_directory(tmp_path, directory):
    app = _server(tmp_path, directory)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert "Use your campus username and password, or the portal account you were given." in page
    status, _ = _sign_in(client, "alan", PASSWORDS["alan"])
    assert status == 302
    assert client.get("/").status_code == 200
    alan = records.account(app, "alan")
    assert alan is not None
    assert (alan.full_name, alan.email, alan.role) == (
        "Alan Turing",
        "alan@campus.example",
        "instructor",
    )
    assert alan.account_source == "ldap"
    # A slow verifier for the desktop copies alan signs in on (tests/sync/test_campus_device).
    assert alan.password_hash.startswith("$argon2id$")
    assert alan.directory_checked_at is not None
    (created,) = records.audit(app, "account.directory_create")
    assert created.after == {
        "full_name": "Alan Turing",
        "email": "alan@campus.example",
        "role": "instructor",
    }
    (login,) = records.audit(app, "auth.login")
    assert login.after and login.after["account_source"] == "ldap"


@pytest.mark.postgres
def test_campus_sign_in_on_postgresql(tmp_path, directory, postgres_url):
    """The central server's own database: the account is created, then brought up to date."""
    app = _server(tmp_path, directory, postgres_url)
    assert _sign_in(app.test_client(), "alan", PASSWORDS["alan"])[0] == 302
    directory.add_to_group("portal-admins", "alan")
    try:
        assert _sign_in(app.test_client(), "alan", PASSWORDS["alan"])[0] == 302
    finally:
        directory.remove_from_group("portal-admins", "alan")
    alan = records.account(app, "alan")
    assert alan is not None and (alan.account_source, alan.role) == ("ldap", "admin")
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()


def test_a_wrong_password_and_a_locked_account_are_refused(tmp_path, directory):
    app = _server(tmp_path, directory)
    client = app.test_client()
    for username, password in [
        ("ada", "Analytical-Engine-1842"),
        ("mallory", PASSWORDS["mallory"]),  # the right password, but locked in the directory
        ("nobody", "Some-Password-123"),
    ]:
        status, page = _sign_in(client, username, password)
        assert status == 401, username
        assert "That username and password do not match an active account." in page
        assert records.account(app, username) is None
    assert len(records.audit(app, "auth.login_failed")) == 3


def test_the_highest_mapped_role_wins_and_no_group_means_student(tmp_path, directory):
    app = _server(tmp_path, directory)
    assert _sign_in(app.test_client(), "grace", PASSWORDS["grace"])[0] == 302
    assert _sign_in(app.test_client(), "linus", PASSWORDS["linus"])[0] == 302
    grace, linus = records.account(app, "grace"), records.account(app, "linus")
    assert grace is not None and grace.role == "admin"  # in portal-admins and teaching-staff
    assert linus is not None and linus.role == "student"  # in no group the portal maps


def test_without_a_group_a_person_is_refused_where_student_has_a_group(tmp_path, directory):
    roles = GROUP_ROLES | {"student": group_dn("students")}
    app = _server(tmp_path, directory, LDAP_GROUP_ROLES=roles)
    status, page = _sign_in(app.test_client(), "linus", PASSWORDS["linus"])
    assert status == 401
    assert "Your campus account is not in a group that may use the portal." in page
    assert records.account(app, "linus") is None
    assert _sign_in(app.test_client(), "ada", PASSWORDS["ada"])[0] == 302
    ada = records.account(app, "ada")
    assert ada is not None and ada.role == "student"


def test_a_changed_group_changes_the_role_at_the_next_sign_in(tmp_path, directory):
    app = _server(tmp_path, directory)
    assert _sign_in(app.test_client(), "alan", PASSWORDS["alan"])[0] == 302
    directory.add_to_group("portal-admins", "alan")
    try:
        assert _sign_in(app.test_client(), "alan", PASSWORDS["alan"])[0] == 302
        alan = records.account(app, "alan")
        assert alan is not None and alan.role == "admin"
    finally:
        directory.remove_from_group("portal-admins", "alan")
    assert _sign_in(app.test_client(), "alan", PASSWORDS["alan"])[0] == 302
    alan = records.account(app, "alan")
    assert alan is not None and alan.role == "instructor"
    updates = records.audit(app, "account.directory_update")
    assert [(u.before, u.after) for u in updates] == [
        ({"role": "instructor"}, {"role": "admin"}),
        ({"role": "admin"}, {"role": "instructor"}),
    ]


def test_a_directory_that_is_down_stops_campus_accounts_only(tmp_path, directory):
    with ldap_server.socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    app = _server(tmp_path, directory, LDAP_URL=f"ldaps://127.0.0.1:{closed}")
    with app.app_context():
        admin = factories.make_user(_db.session, "admin", username="breakglass")
        _db.session.commit()
        assert admin.account_source == "local"
    assert _sign_in(app.test_client(), "breakglass", factories.PASSWORD)[0] == 302
    status, page = _sign_in(app.test_client(), "alan", PASSWORDS["alan"])
    assert status == 401
    assert "The campus directory cannot be reached right now" in page
    (failed,) = records.audit(app, "auth.login_failed")
    assert failed.after and "cannot be reached" in failed.after["reason"]
    # A local account's wrong password is not blamed on the directory.
    status, page = _sign_in(app.test_client(), "breakglass", "Not-The-Password-1")
    assert status == 401
    assert "do not match an active account" in page


def test_a_directory_certificate_that_is_not_trusted_is_refused(tmp_path, directory):
    other = tmp_path / "other-ca.pem"
    trustme.CA(organization_name="Some Other CA").cert_pem.write_to_path(str(other))
    app = _server(tmp_path, directory, LDAP_CA_FILE=str(other))
    status, page = _sign_in(app.test_client(), "alan", PASSWORDS["alan"])
    assert status == 401
    assert "The campus directory's certificate is not trusted by the portal" in page
    assert records.account(app, "alan") is None
    # Without ldap_ca_file the operating system's store does not know the test CA either.
    (tmp_path / "os-store").mkdir()
    plain = _server(tmp_path / "os-store", directory, LDAP_CA_FILE="")
    status, page = _sign_in(plain.test_client(), "alan", PASSWORDS["alan"])
    assert "certificate is not trusted" in page


def test_starttls_and_a_search_with_the_service_account(tmp_path, directory, monkeypatch):
    monkeypatch.setenv("PORTAL_LDAP_BIND_PASSWORD", ldap_server.READER_PASSWORD)
    app = _server(
        tmp_path,
        directory,
        LDAP_URL=directory.ldap_url,
        LDAP_STARTTLS=True,
        LDAP_USER_DN_TEMPLATE="",
        LDAP_SEARCH_BASE=ldap_server.PEOPLE,
        LDAP_SEARCH_FILTER="(&(objectClass=inetOrgPerson)(uid={username}))",
        LDAP_BIND_DN=ldap_server.READER_DN,
    )
    assert _sign_in(app.test_client(), "grace", PASSWORDS["grace"])[0] == 302
    assert _sign_in(app.test_client(), "grace", "Compiler-A0-1953")[0] == 401
    # A filter's special characters in a username are escaped, not obeyed.
    assert _sign_in(app.test_client(), "*", PASSWORDS["grace"])[0] == 401


def test_a_local_account_keeps_its_own_password_when_the_directory_has_the_same_name(
    tmp_path, directory
):
    app = _server(tmp_path, directory)
    with app.app_context():
        factories.make_user(_db.session, "admin", username="ada")
        _db.session.commit()
    status, _ = _sign_in(app.test_client(), "ada", PASSWORDS["ada"])  # the campus password
    assert status == 401
    assert _sign_in(app.test_client(), "ada", factories.PASSWORD)[0] == 302
    ada = records.account(app, "ada")
    assert ada is not None and (ada.account_source, ada.role) == ("local", "admin")


def test_a_directory_account_changes_its_password_on_campus_and_can_be_deactivated(
    tmp_path, directory
):
    app = _server(tmp_path, directory)
    client = app.test_client()
    assert _sign_in(client, "ada", PASSWORDS["ada"])[0] == 302
    page = client.get("/password").get_data(as_text=True)
    assert "your password is your campus password" in page
    assert 'name="new_password"' not in page
    refused = post_form(
        client,
        "/password",
        {
            "current_password": PASSWORDS["ada"],
            "new_password": "Brand-New-Password-77",
            "confirm": "Brand-New-Password-77",
        },
        token_from="/password",
    )
    assert refused.status_code == 422
    with app.app_context():
        ada = _db.session.scalar(select(User).where(User.username == "ada"))
        assert ada is not None
        assert password_matches(ada.password_hash, PASSWORDS["ada"])  # unchanged
        ada.active = False
        _db.session.commit()
    assert client.get("/").status_code == 302  # the open session ends
    status, page = _sign_in(app.test_client(), "ada", PASSWORDS["ada"])
    assert status == 401
    assert "This account has been deactivated in the portal." in page


def test_the_log_in_rate_limit_holds_for_campus_sign_in(tmp_path, directory):
    app = _server(tmp_path, directory, LOGIN_RATE_LIMIT="3 per minute")
    client = app.test_client()
    assert [_sign_in(client, "ada", "Wrong-Password-1")[0] for _ in range(3)] == [401] * 3
    status, page = _sign_in(client, "ada", PASSWORDS["ada"])
    assert status == 429
    assert re.search(r"Too many log-in attempts from this address", page)
    assert records.account(app, "ada") is None


def test_the_service_account_password_is_never_logged_nor_on_healthz(
    tmp_path, directory, monkeypatch, caplog
):
    secret = "Service-Account-Secret-42"  # noqa: S105
    monkeypatch.setenv("PORTAL_LDAP_BIND_PASSWORD", secret)
    app = _server(
        tmp_path,
        directory,
        LDAP_USER_DN_TEMPLATE="",
        LDAP_SEARCH_BASE=ldap_server.PEOPLE,
        LDAP_BIND_DN=ldap_server.READER_DN,  # the wrong password for it: the search fails
    )
    client = app.test_client()
    with caplog.at_level("DEBUG"):
        status, page = _sign_in(client, "grace", PASSWORDS["grace"])
    assert status == 401
    assert "The campus directory cannot be reached right now" in page
    assert "the search account could not bind" in caplog.text
    assert secret not in caplog.text
    assert secret not in client.get("/healthz").get_data(as_text=True)
    with app.app_context():
        assert all(
            secret not in repr(entry.after) for entry in records.audit(app, "auth.login_failed")
        )


def test_an_administrator_cannot_reset_a_campus_password(tmp_path, directory):
    from portal.accounts.services import reset_password
    from portal.errors import ValidationError

    app = _server(tmp_path, directory)
    assert _sign_in(app.test_client(), "ada", PASSWORDS["ada"])[0] == 302
    with app.app_context():
        admin = factories.make_user(_db.session, "admin")
        ada = _db.session.scalar(select(User).where(User.username == "ada"))
        assert ada is not None
        with pytest.raises(ValidationError, match="signs in with a campus password"):
            reset_password(_db.session, ada, "Admin-Chosen-Password-9", actor=admin)
