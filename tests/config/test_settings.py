"""Settings precedence: defaults < machine-wide file < user file < environment < overrides."""

from __future__ import annotations

import pytest

from portal.config import ConfigError, load_settings


@pytest.fixture
def layers(tmp_path, monkeypatch):
    machine = tmp_path / "machine.toml"
    user = tmp_path / "user.toml"
    monkeypatch.setenv("PORTAL_MACHINE_CONFIG", str(machine))
    monkeypatch.setenv("PORTAL_USER_CONFIG", str(user))
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path / "data"))
    return machine, user


def test_defaults_apply_without_files(layers, tmp_path):
    settings = load_settings()
    assert settings["IDLE_LOGOUT_MINUTES"] == 15
    assert settings["UPDATE_CHECK"] is True
    assert settings["DATABASE_URL"] == f"sqlite:///{tmp_path / 'data' / 'portal.db'}"


def test_each_layer_overrides_the_one_below(layers, monkeypatch):
    machine, user = layers
    machine.write_text(
        '[portal]\nserver_url = "https://portal.campus.example"\nidle_logout_minutes = 5\n'
        "update_check = false\nmax_upload_mb = 7\n"
    )
    user.write_text("idle_logout_minutes = 10\nmax_upload_mb = 8\n")
    monkeypatch.setenv("PORTAL_MAX_UPLOAD_MB", "9")
    settings = load_settings({"PAGE_SIZE": 50})
    assert settings["SERVER_URL"] == "https://portal.campus.example"  # machine file only
    assert settings["UPDATE_CHECK"] is False  # machine file only
    assert settings["IDLE_LOGOUT_MINUTES"] == 10  # user beats machine
    assert settings["MAX_UPLOAD_MB"] == 9  # environment beats user
    assert settings["PAGE_SIZE"] == 50  # explicit override


def test_files_with_a_byte_order_mark_are_read(layers):
    machine, _ = layers
    machine.write_bytes('\ufeffserver_url = "https://x.example"\n'.encode())
    assert load_settings()["SERVER_URL"] == "https://x.example"


def test_unknown_key_is_named(layers):
    machine, _ = layers
    machine.write_text("srever_url = 'typo'\n")
    with pytest.raises(ConfigError, match="unknown setting 'srever_url'"):
        load_settings()


def test_broken_toml_names_the_file(layers):
    machine, _ = layers
    machine.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match=str(machine)):
        load_settings()


def test_bad_values_are_explained(layers, monkeypatch):
    monkeypatch.setenv("PORTAL_IDLE_LOGOUT_MINUTES", "soon")
    with pytest.raises(ConfigError, match="IDLE_LOGOUT_MINUTES must be a whole number"):
        load_settings()
    monkeypatch.setenv("PORTAL_IDLE_LOGOUT_MINUTES", "5")
    monkeypatch.setenv("PORTAL_UPDATE_CHECK", "perhaps")
    with pytest.raises(ConfigError, match="true or false"):
        load_settings()


def test_server_mode_requires_database_and_secret(layers, monkeypatch):
    monkeypatch.setenv("PORTAL_MODE", "server")
    with pytest.raises(ConfigError, match="PORTAL_DATABASE_URL"):
        load_settings()
    monkeypatch.setenv("PORTAL_DATABASE_URL", "postgresql+psycopg://localhost/portal")
    with pytest.raises(ConfigError, match="PORTAL_SECRET_KEY"):
        load_settings()


def test_desktop_secret_key_is_generated_once_and_private(layers, tmp_path):
    first = load_settings()["SECRET_KEY"]
    second = load_settings()["SECRET_KEY"]
    assert first == second and len(first) > 40
    key_file = tmp_path / "data" / "secret_key"
    assert key_file.stat().st_mode & 0o077 == 0
