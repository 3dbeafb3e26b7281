"""Shared fixtures: a real SQLite file per test, an optional real PostgreSQL, and log-in helpers."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from flask import Flask
from flask.testing import FlaskClient

# Settings files of the machine running the tests must not leak in.
os.environ["PORTAL_MACHINE_CONFIG"] = "/nonexistent/campus-portal-machine.toml"
os.environ["PORTAL_USER_CONFIG"] = "/nonexistent/campus-portal-user.toml"
for _key in [
    k
    for k in os.environ
    if k.startswith("PORTAL_")
    and k
    not in {
        "PORTAL_MACHINE_CONFIG",
        "PORTAL_USER_CONFIG",
        "PORTAL_TEST_POSTGRES_URL",
        "PORTAL_TEST_REDIS_URL",
    }
]:
    del os.environ[_key]

from portal import create_app  # noqa: E402
from portal.extensions import db as _db  # noqa: E402
from tests import factories  # noqa: E402
from tests.forms import rendered_form  # noqa: E402

ARTIFACTS = Path(__file__).parent / "artifacts"
POSTGRES_URL = os.environ.get(
    "PORTAL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def in_ci() -> bool:
    """CI=true (set by .ci/run): `make test` has installed everything, so nothing may be missing."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """What a test needs is not on this machine: skipped on a developer's machine, a failure in
    CI, so that no test is silently left out there (PostgreSQL, Redis, Xvfb, Chromium, root)."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: every test must run)", pytrace=False)
    pytest.skip(reason)


def make_app(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> Flask:
    config: dict[str, Any] = {
        "DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEY": "test-secret-key-not-for-production",
        "TESTING": True,
    }
    if database_url:
        config["DATABASE_URL"] = database_url
    config.update(overrides)
    app = create_app(config)
    with app.app_context():
        _db.create_all()
    return app


# --- PostgreSQL --------------------------------------------------------------------------------


def _postgres_available() -> str | None:
    """None when reachable, else the reason it is not."""
    try:
        import psycopg

        with psycopg.connect(
            POSTGRES_URL.replace("postgresql+psycopg", "postgresql"), connect_timeout=3
        ):
            return None
    except Exception as exc:  # any failure means: no usable server
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    reason = _postgres_available()
    if reason:
        unavailable(reason)
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    admin_url = postgres_server.replace("postgresql+psycopg", "postgresql")
    name = f"portal_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = postgres_server.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        from sqlalchemy.orm import close_all_sessions

        close_all_sessions()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Redis ---------------------------------------------------------------------------------------

REDIS_URL = os.environ.get("PORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis (a database of its own): skipped locally when missing, a failure in CI."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        unavailable(f"Redis not reachable at {REDIS_URL}: {exc}")
    return REDIS_URL


# --- The application -----------------------------------------------------------------------------


# Opt-in for a module whose tests must hold on both databases (e.g. the registration rules):
#     from tests.conftest import BOTH_DATABASES
#     pytestmark = BOTH_DATABASES
# The PostgreSQL run is skipped when no server is reachable, like `postgres_url`.
BOTH_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file by default; `pytestmark = BOTH_DATABASES` runs a module on both."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    if request.param != "sqlite":
        raise ValueError(f"unknown database {request.param!r}; use 'sqlite' or 'postgresql'")
    return f"sqlite:///{tmp_path / 'portal.db'}"


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    application = make_app(tmp_path, database_url)
    yield application
    with application.app_context():
        _db.session.remove()
        _db.engine.dispose()


@pytest.fixture
def db(app: Flask) -> Iterator[Any]:
    with app.app_context():
        yield _db.session
        _db.session.rollback()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token of the client's current session, read from a page like a browser would."""
    page = client.get(path, follow_redirects=True)
    match = CSRF_META.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path} (status {page.status_code})"
    return match.group(1)


def post_form(
    client: FlaskClient,
    path: str,
    data: dict[str, Any] | None = None,
    token_from: str = "/login",
    **kwargs: Any,
):  # type: ignore[no-untyped-def]
    payload = {"csrf_token": csrf_token(client, token_from), **(data or {})}
    return client.post(path, data=payload, **kwargs)


@pytest.fixture
def login_as(app: Flask, client: FlaskClient) -> Callable[..., Any]:
    """login_as("student") creates a user with that role, logs the client in, returns the user."""

    def login(role: str = "student", **fields: Any) -> Any:
        with app.app_context():
            user = factories.make_user(_db.session, role, **fields)
            _db.session.commit()
            username, user_id = user.username, user.id
        # The log-in form as the page renders it: a renamed field fails every test that logs in.
        form = rendered_form(client.get("/login"), action="/login")
        response = form.submit(client, username=username, password=factories.PASSWORD)
        assert response.status_code == 302, response.get_data(as_text=True)
        with app.app_context():
            return _db.session.get(type(user), user_id)

    return login
