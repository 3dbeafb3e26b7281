"""The idle log-out's record of activity: written at most once a minute (a changed session is
signed and sent again as a cookie), and still exact to that minute."""

from __future__ import annotations

import time

from portal.auth.policy import LAST_SEEN_STEP_SECONDS
from portal.extensions import db as _db
from tests import factories
from tests.conftest import make_app, post_form


def _signed_in_client(tmp_path, minutes: int):
    app = make_app(tmp_path, IDLE_LOGOUT_MINUTES=minutes)
    with app.app_context():
        username = factories.make_user(_db.session, "student").username
        _db.session.commit()
    client = app.test_client()
    post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    assert client.get("/registrations").status_code == 200
    return client


def _last_seen(client) -> float:
    with client.session_transaction() as session:
        return float(session["last_seen"])


def test_pages_opened_within_a_minute_leave_the_session_cookie_alone(tmp_path):
    client = _signed_in_client(tmp_path, minutes=15)
    recorded = _last_seen(client)
    answers = [client.get("/registrations") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all("Set-Cookie" not in a.headers for a in answers)
    assert _last_seen(client) == recorded


def test_activity_a_minute_after_the_last_record_is_recorded(tmp_path):
    client = _signed_in_client(tmp_path, minutes=15)
    with client.session_transaction() as session:
        session["last_seen"] = time.time() - LAST_SEEN_STEP_SECONDS - 1
    before = time.time()
    answer = client.get("/registrations")
    assert answer.status_code == 200 and "Set-Cookie" in answer.headers
    assert _last_seen(client) >= before


def test_a_session_idle_past_the_limit_still_ends(tmp_path):
    """The record may be up to a minute old: a session is ended from it, never later."""
    client = _signed_in_client(tmp_path, minutes=2)
    with client.session_transaction() as session:
        session["last_seen"] = time.time() - 2 * 60 - 1
    answer = client.get("/registrations")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]
