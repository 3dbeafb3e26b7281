"""The server's rules of a sign-in on a copy through its pages (portal/sync/server/sign_in.py)
over the real server app and a real enrolled copy (httpx to the server's WSGI app), and the
copy's own rules (its waiting sign-ins, the offline PIN). The clock is a parameter: codes
expire without sleeping. tests/browser/test_campus_sign_in.py runs the whole flow in Chromium."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.extensions import db as _db
from portal.models import Device, SyncState, User, utcnow
from portal.sync.device import client as sync_client
from portal.sync.device import sign_in as copy_sign_in
from portal.sync.server import sign_in
from portal.sync.server.sign_in import GrantRefused

CALLBACK = "http://127.0.0.1:49152/sign-in/callback"
ON_BOTH = pytest.mark.parametrize("server_database", ["sqlite", "postgresql"], indirect=True)


def _device_of(laptop) -> tuple:  # type: ignore[no-untyped-def]
    with laptop.session():
        state = _db.session.scalar(select(SyncState))
        return state.device_id, state.credential


def _issue(server, device_id, username: str, verifier: str, now=None) -> str:  # type: ignore[no-untyped-def]
    with server.app_context():
        db = _db.session
        device = db.get(Device, device_id)
        user = db.scalar(select(User).where(User.username == username))
        code = sign_in.issue_loopback_code(
            db,
            device,
            user,
            code_challenge=sign_in.s256(verifier),
            redirect_uri=CALLBACK,
            now=now or utcnow(),
        )
        db.commit()
        return code


def _token(laptop, body: dict) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    """POST /sync/v1/sign-in/token as the enrolled copy, over its HTTP client."""
    _device_id, credential = _device_of(laptop)
    transport = sync_client.Transport("http://campus.test", credential, laptop.http)
    try:
        return 200, transport.json("POST", "/sign-in/token", body)
    except sync_client.SyncError as error:
        return 400, {"error": error.code, "detail": str(error)}


def _exchange(code: str, verifier: str) -> dict[str, str]:
    """The body of a loopback code's exchange (RFC 8252), as the copy sends it."""
    return {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": CALLBACK,
    }


@ON_BOTH
def test_a_loopback_code_is_exchanged_once_with_its_verifier(server, campus, instructor_laptop):
    device_id, _credential = _device_of(instructor_laptop)
    verifier = secrets.token_urlsafe(48)
    code = _issue(server, device_id, "lab1", verifier)
    exchange = _exchange(code, secrets.token_urlsafe(48))
    status, answer = _token(instructor_laptop, exchange)
    assert (status, answer["error"]) == (400, "invalid_grant")  # a wrong verifier

    status, answer = _token(instructor_laptop, {**exchange, "redirect_uri": CALLBACK + "x"})
    assert (status, answer["error"]) == (400, "invalid_grant")  # another return address

    status, answer = _token(instructor_laptop, {**exchange, "code_verifier": verifier})
    assert status == 200
    assert (answer["username"], answer["role"]) == ("lab1", "lab_staff")
    with server.app_context():
        from portal.models import DeviceAccount

        assert _db.session.get(DeviceAccount, (device_id, campus.lab_staff)) is not None

    status, answer = _token(instructor_laptop, {**exchange, "code_verifier": verifier})
    assert (status, answer["error"]) == (400, "invalid_grant")  # replayed
    assert "already used" in answer["detail"]


def test_a_loopback_code_is_bound_to_its_device_and_expires(
    server, campus, instructor_laptop, make_device
):
    other = make_device("admin1")
    device_id, _ = _device_of(instructor_laptop)
    verifier = secrets.token_urlsafe(48)
    code = _issue(server, device_id, "teach1", verifier)
    exchange = _exchange(code, verifier)
    status, answer = _token(other, exchange)
    assert (status, answer["error"]) == (400, "invalid_grant")  # another device's code

    issued = utcnow()
    code = _issue(server, device_id, "teach1", verifier, now=issued)
    with server.app_context():
        db = _db.session
        device = db.get(Device, device_id)
        later = issued + timedelta(seconds=sign_in.LOOPBACK_CODE_SECONDS)
        with pytest.raises(GrantRefused, match="expired") as refused:
            sign_in.redeem_loopback_code(
                db, device, code=code, verifier=verifier, redirect_uri=CALLBACK, now=later
            )
        assert refused.value.error == "invalid_grant"
        user = sign_in.redeem_loopback_code(
            db,
            device,
            code=code,
            verifier=verifier,
            redirect_uri=CALLBACK,
            now=later - timedelta(seconds=1),
        )
        assert user.username == "teach1"


def test_a_student_is_refused_on_someone_elses_copy(server, campus, instructor_laptop):
    device_id, _ = _device_of(instructor_laptop)
    verifier = secrets.token_urlsafe(48)
    code = _issue(server, device_id, "stud1", verifier)
    status, answer = _token(
        instructor_laptop,
        _exchange(code, verifier),
    )
    assert (status, answer["error"]) == (400, "access_denied")
    assert "enrolled for that student" in answer["detail"]


def test_a_deactivated_account_gets_no_sign_in_on_a_copy(server, campus, instructor_laptop):
    from portal.accounts.services import set_active
    from tests.sync.conftest import as_user

    device_id, _ = _device_of(instructor_laptop)
    verifier = secrets.token_urlsafe(48)
    code = _issue(server, device_id, "lab1", verifier)
    with server.app_context():
        as_user(server, campus.admin)
        lab1 = _db.session.get(User, campus.lab_staff)
        set_active(_db.session, lab1, False, actor=_db.session.get(User, campus.admin))
        _db.session.commit()
    status, answer = _token(
        instructor_laptop,
        _exchange(code, verifier),
    )
    assert (status, answer["error"]) == (400, "access_denied")
    assert "deactivated" in answer["detail"]


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://127.0.0.1:49152/sign-in/callback",
        "http://evil.example:49152/sign-in/callback",
        "http://127.0.0.1/sign-in/callback",
        "http://127.0.0.1:49152/elsewhere",
        "http://127.0.0.1:49152/sign-in/callback?next=x",
        "http://user@127.0.0.1:49152/sign-in/callback",
    ],
)
def test_the_authorize_page_sends_codes_to_the_copys_loopback_address_only(redirect_uri):
    with pytest.raises(sign_in.SignInRequestInvalid):
        sign_in.loopback_redirect_uri(redirect_uri)


def test_the_authorize_page_confirms_then_redirects_with_a_code(server, campus, instructor_laptop):
    from tests.conftest import csrf_token

    device_id, _ = _device_of(instructor_laptop)
    verifier = secrets.token_urlsafe(48)
    query = {
        "response_type": "code",
        "client_id": str(device_id),
        "redirect_uri": CALLBACK,
        "code_challenge": sign_in.s256(verifier),
        "code_challenge_method": "S256",
        "state": "s-1",
    }
    client = server.test_client()
    anonymous = client.get("/sync/sign-in/authorize", query_string=query)
    assert anonymous.status_code == 302 and "/login?next=" in anonymous.headers["Location"]
    token = csrf_token(client, "/login")
    from tests import factories

    client.post(
        "/login", data={"csrf_token": token, "username": "lab1", "password": factories.PASSWORD}
    )
    page = client.get("/sync/sign-in/authorize", query_string=query)
    assert page.status_code == 200
    assert "Sign in on dev0?" in page.get_data(as_text=True)
    assert "form-action 'self' http://127.0.0.1:49152" in page.headers["Content-Security-Policy"]
    no_csrf = client.post("/sync/sign-in/authorize", query_string=query, data={"confirm": "1"})
    assert no_csrf.status_code in (200, 400) and "Location" not in no_csrf.headers
    token = csrf_token(client, "/")
    confirmed = client.post(
        "/sync/sign-in/authorize", query_string=query, data={"csrf_token": token, "confirm": "1"}
    )
    assert confirmed.status_code == 303
    location = confirmed.headers["Location"]
    assert location.startswith(CALLBACK + "?code=") and location.endswith("&state=s-1")
    cancelled = client.post(
        "/sync/sign-in/authorize", query_string=query, data={"csrf_token": token, "cancel": "1"}
    )
    assert cancelled.headers["Location"] == CALLBACK + "?error=access_denied&state=s-1"
    bad = client.get("/sync/sign-in/authorize", query_string={**query, "code_challenge": "x"})
    assert bad.status_code == 400 and "Location" not in bad.headers


@ON_BOTH
def test_a_device_code_is_polled_until_confirmed(server, campus, instructor_laptop):
    device_id, _ = _device_of(instructor_laptop)
    start = utcnow()
    with server.app_context():
        db = _db.session
        device = db.get(Device, device_id)
        started = sign_in.start_device_authorization(db, device, now=start)
        db.commit()

        def poll(at):  # type: ignore[no-untyped-def]
            return _poll(db, device, started.device_code, at)

        assert poll(start) == "authorization_pending"
        assert poll(start + timedelta(seconds=1)) == "slow_down"  # sooner than the interval
        assert poll(start + timedelta(seconds=8)) == "slow_down"  # the interval was 10 s
        assert poll(start + timedelta(seconds=23)) == "authorization_pending"  # 15 s later

        lab1 = db.scalar(select(User).where(User.username == "lab1"))
        with pytest.raises(Exception, match="not known"):
            sign_in.pending_device_grant(db, "BBBB-BBBB", now=start)
        grant = sign_in.pending_device_grant(db, started.user_code.lower(), now=start)
        sign_in.decide_device_grant(db, grant, lab1, approve=True, now=start)
        user = poll(start + timedelta(seconds=40))
        assert isinstance(user, User) and user.username == "lab1"
        assert poll(start + timedelta(seconds=60)) == "invalid_grant"  # used once

        refused = sign_in.start_device_authorization(db, device, now=start)
        grant = sign_in.pending_device_grant(db, refused.user_code, now=start)
        sign_in.decide_device_grant(db, grant, lab1, approve=False, now=start)
        assert _poll(db, device, refused.device_code, start) == "access_denied"

        late = sign_in.start_device_authorization(db, device, now=start)
        after = start + timedelta(seconds=sign_in.DEVICE_CODE_SECONDS)
        assert _poll(db, device, late.device_code, after) == "expired_token"
        with pytest.raises(Exception, match="expired"):
            sign_in.pending_device_grant(db, late.user_code, now=after)
        db.rollback()


def _poll(db, device, device_code, now):  # type: ignore[no-untyped-def]
    try:
        return sign_in.poll_device_code(db, device, device_code, now=now)
    except GrantRefused as error:
        return error.error


def test_a_device_code_is_asked_for_and_polled_over_http(server, campus, instructor_laptop):
    _device_id, credential = _device_of(instructor_laptop)
    transport = sync_client.Transport("http://campus.test", credential, instructor_laptop.http)
    answer = transport.json("POST", "/sign-in/device", {})
    assert answer["verification_uri"].endswith("/device")
    assert answer["interval"] == 5 and answer["expires_in"] == 600
    status, polled = _token(
        instructor_laptop,
        {"grant_type": sign_in.DEVICE_GRANT_TYPE, "device_code": answer["device_code"]},
    )
    assert (status, polled["error"]) == (400, "authorization_pending")
    status, polled = _token(
        instructor_laptop,
        {"grant_type": sign_in.DEVICE_GRANT_TYPE, "device_code": answer["device_code"]},
    )
    assert (status, polled["error"]) == (400, "slow_down")


def test_the_copy_takes_a_state_once_and_not_after_it_expired():
    now = [0.0]
    pending = copy_sign_in.PendingSignIns(clock=lambda: now[0])
    first = pending.start_browser("https://campus.example", "dev", CALLBACK)
    assert "code_challenge_method=S256" in first.authorize_url
    assert sign_in.s256(first.verifier) in first.authorize_url
    assert pending.take_state("forged") is None
    assert pending.take_state(first.state) is first
    assert pending.take_state(first.state) is None  # once
    second = pending.start_browser("https://campus.example", "dev", CALLBACK)
    now[0] += copy_sign_in.ATTEMPT_SECONDS
    assert pending.take_state(second.state) is None  # expired
    assert "took too long" in pending.get(second.id).error


@pytest.mark.parametrize(
    ("pin", "problem"),
    [
        ("12345", "at least 6 digits"),
        ("777777", "same digit"),
        ("123456", "run of digits"),
        ("12a456", "digits only"),
        ("482916", ""),
    ],
)
def test_an_offline_pin_has_enough_digits_and_is_not_one_digit_repeated(pin, problem):
    assert problem in copy_sign_in.pin_problem(pin)
    assert bool(copy_sign_in.pin_problem(pin)) == bool(problem)


def test_the_copy_offers_the_campus_sign_in_when_its_server_does(
    server, campus, instructor_laptop, monkeypatch
):
    """Learnt at each sync and kept: the button shows offline only while the copy does not
    know it is offline; IT's setting chooses the way."""
    from portal.sync.device import runner as device

    laptop = instructor_laptop
    runner = device.runner_for(laptop.app)
    runner.http = laptop.http

    def login_page() -> str:
        return laptop.app.test_client().get("/login").get_data(as_text=True)

    assert "Sign in with your campus account" not in login_page()
    monkeypatch.setitem(server.config["PORTAL"], "SIGN_IN_METHODS", ["local", "oidc"])
    runner.run()
    page = login_page()
    assert "Sign in with your campus account" in page
    assert "Sign in with a code on your phone instead" in page
    monkeypatch.setitem(laptop.app.config["PORTAL"], "CAMPUS_SIGN_IN_FLOW", "device_code")
    page = login_page()
    assert 'name="flow" value="code">Sign in with your campus account' in page
    assert 'value="browser"' not in page
    runner.online = False  # the last call found the server unreachable
    assert "Sign in with your campus account" not in login_page()
    runner.online = True
    monkeypatch.setitem(server.config["PORTAL"], "SIGN_IN_METHODS", ["local"])
    runner.run()
    assert "Sign in with your campus account" not in login_page()
    runner.stop()
