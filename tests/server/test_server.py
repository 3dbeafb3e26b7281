"""The central server for real: `campus-portal-server` runs gunicorn with the deployment's config
file against a new PostgreSQL database, with log-in rate limits counted in Redis."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = ROOT / "installers/server/gunicorn.conf.py"

pytestmark = pytest.mark.postgres


def server_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "portal.server", *args]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for_health(
    base: str, process: subprocess.Popen[str], log: Path, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            get_json(f"{base}/healthz")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)  # polling for the port to open, not waiting a fixed time
    raise AssertionError(f"{base}/healthz did not answer in {timeout} s:\n{log.read_text()}")


@pytest.fixture
def server_env(postgres_url: str, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PORTAL_DATABASE_URL=postgres_url,
        PORTAL_SECRET_KEY="server-test-secret-key-0123456789",
        PORTAL_RATELIMIT_STORAGE_URI=redis_url,
        PORTAL_LOG_LEVEL="WARNING",
    )
    return env


@pytest.fixture
def running_server(server_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    migrated = subprocess.run(
        server_command("migrate"), env=server_env, capture_output=True, text=True, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        server_command(
            "serve", "--config", str(GUNICORN_CONF), "--bind", f"127.0.0.1:{port}", "--workers", "2"
        ),
        env=server_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_health(base, process, log_path)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)  # gunicorn's graceful shutdown
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_gunicorn_serves_the_portal_from_postgresql(running_server: str) -> None:
    status, health = get_json(f"{running_server}/healthz")
    assert status == 200
    assert health["mode"] == "server"
    assert health["database"]["dialect"] == "postgresql"
    assert health["database"]["status"] == "ok"
    assert "settings" not in health


def test_log_in_attempts_are_counted_in_redis_per_client_address(
    running_server: str, redis_url: str
) -> None:
    import redis

    client_address = f"198.51.100.{random.randint(1, 254)}"  # what nginx passes on
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    with opener.open(f"{running_server}/login", timeout=10) as page:
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.read().decode())
    assert token
    form = urllib.parse.urlencode(
        {"csrf_token": token.group(1), "username": "nobody", "password": "wrong-password"}
    ).encode()
    request = urllib.request.Request(
        f"{running_server}/login", data=form, headers={"X-Forwarded-For": client_address}
    )
    try:
        opener.open(request, timeout=10).close()
    except urllib.error.HTTPError as refused:  # a failed log-in may answer 4xx: still counted
        assert refused.code < 500
    store = redis.Redis.from_url(redis_url)
    keys = store.keys(f"*{client_address}*")
    try:
        assert keys, "no rate-limit counter for the client address in Redis"
    finally:
        if keys:
            store.delete(*keys)


def test_server_mode_without_a_database_url_stops_with_a_clear_message() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PORTAL_DATABASE_URL"}
    result = subprocess.run(
        server_command("serve"), env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "PORTAL_DATABASE_URL" in result.stderr


def test_help_lists_every_command() -> None:
    result = subprocess.run(
        server_command("--help"), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    for command in ("serve", "migrate", "worker", "enrolment-code create", "create-admin"):
        assert command in result.stdout, command


def _log_in(base: str, username: str, password: str) -> tuple[int, str]:
    """Fill the real log-in form; returns the final status and page."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    with opener.open(f"{base}/login", timeout=30) as page:
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.read().decode())
    assert token
    form = urllib.parse.urlencode(
        {"csrf_token": token.group(1), "username": username, "password": password}
    ).encode()
    try:
        with opener.open(f"{base}/login", data=form, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def test_the_first_administrator_of_a_new_server_is_made_from_the_command_line(
    running_server: str, server_env: dict[str, str]
) -> None:
    """The IT guide's step: a fresh server has no account; `create-admin` makes one (the
    password from standard input, as a script gives it), who can then sign in."""
    password = "Correct-horse-battery-9"

    def create_admin(username: str, secret: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            server_command("create-admin", username, "--name", "Ada Admin"),
            input=f"{secret}\n",
            env=server_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    weak = create_admin("it-admin", "password1")
    assert weak.returncode == 2
    assert "too easy to guess" in weak.stderr and "Nothing was created" in weak.stderr
    assert _log_in(running_server, "it-admin", "password1")[0] == 401

    made = create_admin("it-admin", password)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "Created administrator it-admin."
    status, page = _log_in(running_server, "it-admin", password)
    assert status == 200
    assert "Ada Admin" in page and "/admin/" in page

    again = create_admin("it-admin", password)
    assert again.returncode == 2
    assert "already taken" in again.stderr
