"""Password hashing cost (OWASP's Argon2id minimum), rehash on log-in, and the bounded log-in
queue that answers "busy, try again" instead of starving page requests."""

from __future__ import annotations

from argon2 import PasswordHasher, extract_parameters

from portal.accounts.services import PASSWORD_HASH_PARAMETERS, hash_password
from portal.auth.login_queue import EXTENSION
from portal.extensions import db as _db
from portal.models import User
from tests import factories
from tests.conftest import make_app, post_form


def test_new_hashes_use_argon2id_at_owasp_s_recommended_cost():
    parameters = extract_parameters(hash_password("correct-horse-battery"))
    assert parameters.type.name == "ID"
    assert parameters.memory_cost == 19 * 1024 == PASSWORD_HASH_PARAMETERS["memory_cost"]
    assert parameters.time_cost == 2
    assert parameters.parallelism == 1


def test_a_hash_with_older_parameters_is_remade_at_the_next_log_in(app, client):
    old = PasswordHasher()  # argon2-cffi's defaults: 64 MiB, 3 passes, 4 lanes
    with app.app_context():
        user = factories.make_user(_db.session, "student")
        user.password_hash = old.hash(factories.PASSWORD)
        _db.session.commit()
        username, user_id = user.username, user.id
    assert extract_parameters(old.hash("x")).memory_cost == 65536
    response = post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    assert response.status_code == 302
    with app.app_context():
        stored = _db.session.get(User, user_id).password_hash
    parameters = extract_parameters(stored)
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (19456, 2, 1)
    PasswordHasher(**PASSWORD_HASH_PARAMETERS).verify(stored, factories.PASSWORD)


def test_a_log_in_that_finds_no_free_slot_is_told_to_retry(tmp_path):
    app = make_app(tmp_path, LOGIN_CONCURRENCY=1, LOGIN_WAIT_SECONDS=0)
    with app.app_context():
        username = factories.make_user(_db.session, "student").username
        _db.session.commit()
    client = app.test_client()
    slots = app.extensions[EXTENSION]
    assert slots.acquire(timeout=1)  # another log-in is being hashed right now
    try:
        busy = post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    finally:
        slots.release()
    assert busy.status_code == 503
    # At least our 5 s; Flask-Limiter raises it to the end of its own window on this route.
    assert int(busy.headers["Retry-After"]) >= 5
    assert "Many people are logging in right now" in busy.get_data(as_text=True)
    # Pages are served meanwhile, and the retry goes through once a slot is free.
    again = post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    assert again.status_code == 302
