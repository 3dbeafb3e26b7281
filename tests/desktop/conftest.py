"""Fixtures for launcher tests: real subprocesses, a real SQLite file, a first administrator."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.desktop.launcher_process import Launcher, PortalClient

ADMIN_USERNAME = "chief"
ADMIN_PASSWORD = "chief-password-1"


def create_first_admin(client: PortalClient) -> None:
    token = client.csrf_token("/setup/")
    response = client.post(
        "/setup/",
        {
            "csrf_token": token,
            "full_name": "Chief Administrator",
            "username": ADMIN_USERNAME,
            "email": "",
            "password": ADMIN_PASSWORD,
            "confirm": ADMIN_PASSWORD,
        },
    )
    assert response.status == 302, response.text[:500]


def log_in(client: PortalClient, username: str = ADMIN_USERNAME, password: str = ADMIN_PASSWORD):
    token = client.csrf_token("/login")
    response = client.post(
        "/login", {"csrf_token": token, "username": username, "password": password}
    )
    assert response.status == 302, response.text[:500]
    return response


def create_user(client: PortalClient, username: str) -> Any:
    """The admin's "new user" form, as a person fills it in; returns the response."""
    token = client.csrf_token("/admin/users/new")
    return client.post(
        "/admin/users/new",
        {
            "csrf_token": token,
            "username": username,
            "full_name": f"Full Disk {username}",
            "role": "instructor",
            "password": ADMIN_PASSWORD,
        },
    )


def mark_from_a_newer_version(data_dir: Path) -> None:
    """Stamp the database with a schema revision this version does not know."""
    with closing(sqlite3.connect(data_dir / "portal.db")) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'fffffffffff9'")
        connection.commit()


@pytest.fixture
def start_launcher(tmp_path: Path) -> Iterator[Callable[..., Launcher]]:
    """start_launcher(data_dir, *args) -> a started headless launcher; all are stopped after."""
    started: list[Launcher] = []

    def start(data_dir: Path | None = None, *args: str, **kwargs: Any) -> Launcher:
        launcher = Launcher(data_dir or tmp_path / "data", *args, **kwargs)
        started.append(launcher)
        return launcher.start()

    yield start
    for launcher in started:
        if launcher.process is not None and launcher.process.poll() is None:
            launcher.kill()


@pytest.fixture(scope="session")
def admin_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir made by the real launcher: migrated, first administrator created, stopped."""
    data_dir = tmp_path_factory.mktemp("admin-template") / "data"
    launcher = Launcher(data_dir).start()
    try:
        create_first_admin(launcher.client())
    finally:
        code, _, stderr = launcher.stop()
    assert code == 0, stderr
    shutil.rmtree(data_dir / "backups", ignore_errors=True)
    shutil.rmtree(data_dir / "logs", ignore_errors=True)
    return data_dir


@pytest.fixture
def admin_data_dir(admin_template: Path, tmp_path: Path) -> Path:
    """A private copy of the template data dir for one test."""
    target = tmp_path / "data"
    shutil.copytree(admin_template, target)
    return target
