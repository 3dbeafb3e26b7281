"""The API rate limit in Redis (the central server): one round trip per call, with its headers."""

from __future__ import annotations

import time

import pytest

from portal.extensions import db as _db
from tests import factories
from tests.conftest import make_app


@pytest.fixture
def redis_commands(monkeypatch):
    """The commands the app sends to Redis (the client's calls, passed on unchanged)."""
    import redis

    sent: list[str] = []
    send = redis.Redis.execute_command

    def counting(self, *args, **options):
        sent.append(str(args[0]).upper())
        return send(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counting)
    return sent


def test_an_api_call_is_counted_in_one_redis_round_trip_with_its_headers(
    tmp_path, redis_url, redis_commands
):
    app = make_app(tmp_path, API_RATE_LIMIT="3 per minute", RATELIMIT_STORAGE_URI=redis_url)
    with app.app_context():
        from portal.profile.services import create_token

        user = factories.make_user(_db.session, "student")
        secret = create_token(
            _db.session, user, "loop", expires_in_days=None, now=factories.now()
        ).secret
        _db.session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}

    first = client.get("/api/v1/terms", headers=headers)  # may load the script into Redis
    redis_commands.clear()
    later = [client.get("/api/v1/terms", headers=headers) for _ in range(3)]

    assert [r.status_code for r in [first, *later]] == [200, 200, 200, 429]
    assert len(redis_commands) == 3, redis_commands  # one per call, headers included
    assert [r.headers["X-RateLimit-Remaining"] for r in [first, *later]] == ["2", "1", "0", "0"]
    assert {r.headers["X-RateLimit-Limit"] for r in [first, *later]} == {"3"}
    # The window started with the first call and ends within its minute.
    resets = {int(r.headers["X-RateLimit-Reset"]) for r in [first, *later]}
    assert len(resets) <= 2  # the same second, or the next one if a second boundary fell between
    assert time.time() < min(resets) <= time.time() + 61
    assert 0 < int(later[-1].headers["Retry-After"]) <= 61


def test_the_window_expires_in_redis(tmp_path, redis_url):
    """The counter is created with the window's expiry, so an idle caller's count goes away."""
    import redis

    app = make_app(tmp_path, API_RATE_LIMIT="5 per hour", RATELIMIT_STORAGE_URI=redis_url)
    with app.app_context():
        from portal.profile.services import create_token

        user = factories.make_user(_db.session, "student")
        secret = create_token(
            _db.session, user, "loop", expires_in_days=None, now=factories.now()
        ).secret
        _db.session.commit()
    response = app.test_client().get("/api/v1/terms", headers={"Authorization": f"Bearer {secret}"})
    assert response.headers["X-RateLimit-Remaining"] == "4"
    from portal.api.routes import _caller_key

    with app.test_request_context(headers={"Authorization": f"Bearer {secret}"}):
        key = _caller_key()
    store = redis.Redis.from_url(redis_url)
    found = list(store.keys(f"*{key}*"))
    try:
        assert found and 3500 < store.ttl(found[0]) <= 3600
        assert int(store.get(found[0])) == 1
    finally:
        if found:
            store.delete(*found)


def test_a_browser_session_is_counted_as_its_user(tmp_path):
    """The session cookie changes whenever the session does; the count must not restart."""
    from tests.conftest import post_form

    app = make_app(tmp_path, API_RATE_LIMIT="3 per minute")
    with app.app_context():
        username = factories.make_user(_db.session, "student").username
        _db.session.commit()
    client = app.test_client()
    post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    statuses = []
    for _ in range(4):
        statuses.append(client.get("/api/v1/terms").status_code)
        with client.session_transaction() as session:
            session["last_seen"] -= 120  # each call now records activity: a new cookie
    assert statuses == [200, 200, 200, 429]
