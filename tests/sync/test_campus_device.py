"""Campus accounts on a desktop copy enrolled with a server that signs in against a real
OpenLDAP directory (tests/auth/ldap_server): the first sign-in goes through the server with the
directory password, later ones work offline with the kept verifier until offline_sign_in_days
after the last online one; the server itself always asks the directory."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from portal.extensions import db as _db
from portal.models import Section, SyncState, User, utcnow
from portal.sync.device import runner as device
from tests import factories
from tests.auth import ldap_server
from tests.auth.ldap_server import PASSWORDS, Directory, group_dn
from tests.conftest import CSRF_META, post_form
from tests.sync.conftest import SERVER_URL, wsgi_client


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Directory]:
    yield from ldap_server.start_directory(tmp_path_factory.mktemp("ldap"))


@pytest.fixture
def laptop(campus, make_device, server, directory, monkeypatch):
    """An instructor's laptop; its server signs campus accounts in against the directory."""
    settings = server.config["PORTAL"]
    for key, value in {
        "SIGN_IN_METHODS": ["ldap", "local"],
        "LDAP_URL": directory.ldaps_url,
        "LDAP_CA_FILE": str(directory.ca_file),
        "LDAP_USER_DN_TEMPLATE": f"uid={{username}},{ldap_server.PEOPLE}",
        "LDAP_GROUP_ROLES": {"instructor": group_dn("teaching-staff")},
    }.items():
        monkeypatch.setitem(settings, key, value)
    made = make_device("teach1")
    made.app.extensions[device.HTTP_CLIENT_KEY] = made.http
    yield made
    device.runner_for(made.app).stop()


def _log_in(app, username: str, password: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    response = post_form(app.test_client(), "/login", {"username": username, "password": password})
    return response.status_code, response.get_data(as_text=True).replace("&#39;", "'")


def _server_url(app, url: str, http: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    device.runner_for(app).http = http
    with app.app_context():
        _db.session.execute(update(SyncState).values(server_url=url))
        _db.session.commit()


def _go_offline(app) -> None:  # type: ignore[no-untyped-def]
    """The server stops answering: the copy's address points at a closed port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _server_url(app, f"http://127.0.0.1:{port}", httpx.Client(timeout=5))


def _days_pass(app, username: str, days: int) -> None:  # type: ignore[no-untyped-def]
    """The copy's record of the last online sign-in moves `days` into the past."""
    with app.app_context():
        user = _db.session.scalar(select(User).where(User.username == username))
        assert user is not None and user.directory_checked_at is not None
        user.directory_checked_at = utcnow() - timedelta(days=days)
        _db.session.commit()


def test_a_campus_account_signs_in_online_first_then_offline_until_the_period_ends(laptop, server):
    status, page = _log_in(laptop.app, "alan", PASSWORDS["alan"])
    assert status == 302, page
    with laptop.session():
        alan = _db.session.scalar(select(User).where(User.username == "alan"))
        assert alan is not None
        assert (alan.account_source, alan.role) == ("ldap", "instructor")
        assert alan.password_hash.startswith("$argon2id$")  # the slow verifier, not the password

    _go_offline(laptop.app)
    assert _log_in(laptop.app, "alan", PASSWORDS["alan"])[0] == 302
    status, page = _log_in(laptop.app, "alan", "Enigma-Bombe-1941")
    assert status == 401 and "do not match an active account" in page

    _days_pass(laptop.app, "alan", 13)
    assert _log_in(laptop.app, "alan", PASSWORDS["alan"])[0] == 302
    _days_pass(laptop.app, "alan", 15)
    status, page = _log_in(laptop.app, "alan", PASSWORDS["alan"])
    assert status == 401
    assert "Your last online sign-in on this computer was more than 14 days ago" in page
    assert "Connect to the campus network (or the internet) and sign in again" in page

    # Online again: the server asks the directory, and the offline period starts again.
    _server_url(laptop.app, SERVER_URL, wsgi_client(server))
    assert _log_in(laptop.app, "alan", PASSWORDS["alan"])[0] == 302
    _go_offline(laptop.app)
    assert _log_in(laptop.app, "alan", PASSWORDS["alan"])[0] == 302


def test_the_server_keeps_no_verifier_it_would_accept_itself(laptop, server):
    """The central server asks the directory every time: a directory that is down is said
    so, even for a person whose verifier it keeps for the copies."""
    assert _log_in(laptop.app, "alan", PASSWORDS["alan"])[0] == 302
    server.config["PORTAL"]["LDAP_URL"] = "ldaps://127.0.0.1:1"
    status, page = _log_in(server, "alan", PASSWORDS["alan"])
    assert status == 401
    assert "The campus directory cannot be reached right now" in page


def test_a_campus_account_deactivated_on_the_server_stops_on_the_copy(laptop, server, campus):
    """alan (in no section) signed in here, so the copy's audit entries name him: after his
    deactivation the next sync goes through, and he can no longer sign in here."""
    from portal.accounts.services import set_active
    from tests.sync.conftest import as_user

    assert _log_in(laptop.app, "alan", PASSWORDS["alan"])[0] == 302
    laptop.sync()
    with server.app_context():
        as_user(server, campus.admin)
        alan = _db.session.scalars(select(User).where(User.username == "alan")).one()
        set_active(_db.session, alan, False, actor=_db.session.get(User, campus.admin))
        _db.session.commit()
    laptop.sync()
    status, page = _log_in(laptop.app, "alan", PASSWORDS["alan"])
    assert status == 401 and "This account has been deactivated in the portal." in page
    _go_offline(laptop.app)
    status, page = _log_in(laptop.app, "alan", PASSWORDS["alan"])
    assert status == 401  # no verifier is left here for him
    assert _log_in(laptop.app, "teach1", factories.PASSWORD)[0] == 302  # the others still can


def test_people_take_turns_on_a_shared_copy_each_with_their_own_verifier(
    laptop, server, campus, monkeypatch
):
    """A shared lab PC (enrolled for teach1): a local account (lab1), a directory account
    (alan) and a person who signs in by single sign-on through the server's pages, then an
    offline PIN (olga), sign in on it in turn. The copy keeps a verifier for each of them
    only (their own secret signs in only themselves), holds exactly what the scope rules give
    those accounts, and refuses a student, whose data belongs on their own device only."""
    from urllib.parse import parse_qs, urlparse

    from portal.models import Device, OfflinePin
    from portal.sync.device import sign_in_routes
    from portal.sync.server import sign_in as server_sign_in
    from tests.sync.conftest import as_user, device_accounts, visible_rows

    with server.app_context():
        db = _db.session
        olga = factories.make_user(db, "instructor", username="olga")
        olga.account_source, olga.password_hash = "oidc", "!"
        as_user(server, campus.admin)
        section = db.get(Section, campus.other_section)
        section.instructor_id = olga.id  # her section is not teach1's
        db.commit()

    assert _log_in(laptop.app, "teach1", factories.PASSWORD)[0] == 302
    assert _log_in(laptop.app, "lab1", factories.PASSWORD)[0] == 302
    assert _log_in(laptop.app, "alan", PASSWORDS["alan"])[0] == 302
    status, page = _log_in(laptop.app, "stud1", factories.PASSWORD)
    assert status == 401
    assert "can only be used on a device enrolled for that student" in page

    # olga: the browser goes to the server's page (she signs in there by single sign-on and
    # confirms; the server then gives the code) and comes back to the copy's loopback address.
    opened: list[str] = []
    monkeypatch.setattr(sign_in_routes.webbrowser, "open", lambda url: opened.append(url))
    window = laptop.app.test_client()
    loopback = "http://127.0.0.1:49152"

    def post(path: str, data: dict[str, str], token_from: str):  # type: ignore[no-untyped-def]
        page = window.get(token_from, base_url=loopback).get_data(as_text=True)
        token = CSRF_META.search(page)
        assert token is not None
        return window.post(path, data={"csrf_token": token.group(1), **data}, base_url=loopback)

    started = post("/sign-in/campus", {"flow": "browser"}, "/login")
    assert started.status_code == 200
    query = parse_qs(urlparse(opened[0]).query)
    with server.app_context():
        db = _db.session
        code = server_sign_in.issue_loopback_code(
            db,
            db.get(Device, uuid.UUID(query["client_id"][0])),
            db.scalar(select(User).where(User.username == "olga")),
            code_challenge=query["code_challenge"][0],
            redirect_uri=query["redirect_uri"][0],
            now=utcnow(),
        )
        db.commit()
    back = window.get(f"/sign-in/callback?code={code}&state={query['state'][0]}", base_url=loopback)
    assert back.status_code == 200
    done = window.get("/sign-in/campus/status", base_url=loopback).get_json()
    assert done["state"] == "done" and done["next"].endswith("/offline-pin")
    chosen = post("/offline-pin", {"pin": "482913", "confirm": "482913"}, "/offline-pin")
    assert chosen.status_code == 302

    device.runner_for(laptop.app).run()  # a sync with everyone on the copy
    with laptop.session():
        db = _db.session
        verifiers = {
            user.username for user in db.scalars(select(User).where(User.password_hash != "!"))
        }
        pins = {
            db.get(User, row.user_id).username
            for row in db.scalars(select(OfflinePin).where(OfflinePin.pin_hash != ""))
        }
        db.rollback()
    assert verifiers == {"teach1", "lab1", "alan"}  # nobody else's password verifier
    assert pins == {"olga"}
    # What each may see and no more: the copy holds exactly the rows the scope rules give its
    # accounts (and other accounts' rows without their verifiers).
    accounts = device_accounts(server, laptop)
    assert set(_usernames(server, accounts)) == {"teach1", "lab1", "alan", "olga"}
    assert visible_rows(laptop.app) == visible_rows(server, accounts)

    _go_offline(laptop.app)
    for username, password in [
        ("teach1", factories.PASSWORD),
        ("lab1", factories.PASSWORD),
        ("alan", PASSWORDS["alan"]),
    ]:
        assert _log_in(laptop.app, username, password)[0] == 302
    assert _log_in(laptop.app, "teach1", PASSWORDS["alan"])[0] == 401  # his secret: him only
    assert _log_in(laptop.app, "alan", factories.PASSWORD)[0] == 401
    assert _log_in(laptop.app, "olga", "482913")[0] == 401  # no password of hers is here

    def pin_log_in(username: str, pin: str) -> int:
        client = laptop.app.test_client()
        data = {"username": username, "pin": pin}
        return post_form(client, "/login/pin", data, token_from="/login/pin").status_code

    assert pin_log_in("olga", "482913") == 302
    assert pin_log_in("teach1", "482913") == 401  # her PIN signs in her only


def _usernames(server, accounts) -> list[str]:  # type: ignore[no-untyped-def]
    with server.app_context():
        return [_db.session.get(User, account_id).username for account_id, _role in accounts]
