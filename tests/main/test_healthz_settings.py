"""/healthz on a desktop copy shows the machine-wide settings that IT preset (read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask_migrate import stamp

from tests.conftest import make_app


def _healthz(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        stamp()
    return app.test_client().get("/healthz").get_json()


def test_machine_wide_file_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    machine = tmp_path / "machine.toml"
    machine.write_text(
        '[portal]\nserver_url = "https://portal.campus.example"\nenrolment_code = "LAB-42"\n'
        "update_check = false\nidle_logout_minutes = 5\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("PORTAL_MACHINE_CONFIG", str(machine))
    body = _healthz(make_app(tmp_path))
    assert body["settings"] == {
        "server_url": "https://portal.campus.example",
        "enrolment_code_set": True,
        "update_check": False,
        "idle_logout_minutes": 5,
    }
    assert "LAB-42" not in str(body)


def test_server_mode_reports_no_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_MODE", "server")
    body = _healthz(make_app(tmp_path, f"sqlite:///{tmp_path / 'server.db'}"))
    assert body["mode"] == "server"
    assert "settings" not in body
