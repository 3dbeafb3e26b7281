"""Settings: defaults < machine-wide file < per-user file < environment < explicit overrides."""

from __future__ import annotations

import os
import secrets
import sys
import tomllib
from pathlib import Path
from typing import Any

import platformdirs

APP_NAME = "campus-portal"
ENV_PREFIX = "PORTAL_"

# Keys that may be set from files and the environment, with their type.
SETTINGS: dict[str, type] = {
    "MODE": str,  # "desktop" or "server"
    "DATABASE_URL": str,
    "SECRET_KEY": str,
    "DATA_DIR": str,
    "UPLOAD_DIR": str,
    "SERVER_URL": str,
    "ENROLMENT_CODE": str,
    "UPDATE_CHECK": bool,
    "IDLE_LOGOUT_MINUTES": int,
    "MAX_UPLOAD_MB": int,
    "RATELIMIT_STORAGE_URI": str,
    "LOGIN_RATE_LIMIT": str,
    "LOG_LEVEL": str,
    "SESSION_COOKIE_SECURE": bool,
    "PAGE_SIZE": int,
    "SHARED_DIR": str,
    "JOB_QUEUE_URL": str,
    "API_RATE_LIMIT": str,
    "METRICS_ALLOWED_ADDRESSES": str,
    "LOGIN_CONCURRENCY": int,
    "LOGIN_WAIT_SECONDS": int,
}

DEFAULTS: dict[str, Any] = {
    "MODE": "desktop",
    "DATABASE_URL": "",
    "SECRET_KEY": "",
    "DATA_DIR": "",
    "UPLOAD_DIR": "",
    "SERVER_URL": "",
    "ENROLMENT_CODE": "",
    "UPDATE_CHECK": True,
    "IDLE_LOGOUT_MINUTES": 15,
    "MAX_UPLOAD_MB": 20,
    "RATELIMIT_STORAGE_URI": "memory://",
    "LOGIN_RATE_LIMIT": "10 per minute",
    "LOG_LEVEL": "INFO",
    "SESSION_COOKIE_SECURE": False,
    "PAGE_SIZE": 25,
    "SHARED_DIR": "",
    "JOB_QUEUE_URL": "",
    "API_RATE_LIMIT": "600 per minute",
    "METRICS_ALLOWED_ADDRESSES": "127.0.0.1, ::1",
    "LOGIN_CONCURRENCY": 2,
    "LOGIN_WAIT_SECONDS": 5,
}


class ConfigError(Exception):
    """A setting is missing or has a value that cannot be used."""


def machine_config_path() -> Path:
    """The file IT writes at install time (one per machine)."""
    if override := os.environ.get("PORTAL_MACHINE_CONFIG"):
        return Path(override)
    if sys.platform.startswith("linux"):
        return Path("/etc/campus-portal/config.toml")
    return Path(platformdirs.site_config_dir(APP_NAME, appauthor=False)) / "config.toml"


def user_config_path() -> Path:
    if override := os.environ.get("PORTAL_USER_CONFIG"):
        return Path(override)
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "config.toml"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def _coerce(key: str, value: Any, source: str) -> Any:
    kind = SETTINGS[key]
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{source}: {key} must be true or false, not {value!r}")
    if kind is int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: {key} must be a whole number, not {value!r}") from None
    return str(value)


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML settings file; keys are case-insensitive. A missing file is empty."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"settings file {path} is not valid TOML: {exc}") from exc
    section = data.get("portal", data)
    values: dict[str, Any] = {}
    for name, value in section.items():
        key = name.upper()
        if key not in SETTINGS:
            raise ConfigError(f"settings file {path}: unknown setting {name!r}")
        values[key] = _coerce(key, value, str(path))
    return values


def load_settings(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge every layer, lowest first, and fill in the derived paths."""
    settings = dict(DEFAULTS)
    settings.update(read_config_file(machine_config_path()))
    settings.update(read_config_file(user_config_path()))
    for key in SETTINGS:
        env_value = os.environ.get(ENV_PREFIX + key)
        if env_value is not None and env_value != "":
            settings[key] = _coerce(key, env_value, f"environment variable {ENV_PREFIX}{key}")
    for key, value in (overrides or {}).items():
        settings[key] = _coerce(key, value, "override") if key in SETTINGS else value

    if settings["MODE"] not in {"desktop", "server"}:
        raise ConfigError(f"MODE must be 'desktop' or 'server', not {settings['MODE']!r}")
    data_dir = Path(settings["DATA_DIR"] or default_data_dir())
    settings["DATA_DIR"] = str(data_dir)
    if not settings["DATABASE_URL"]:
        if settings["MODE"] == "server":
            raise ConfigError("server mode needs PORTAL_DATABASE_URL (a PostgreSQL URL)")
        data_dir.mkdir(parents=True, exist_ok=True)
        settings["DATABASE_URL"] = f"sqlite:///{data_dir / 'portal.db'}"
    # Files every instance of a server must see (uploads, imports): one shared directory.
    shared_dir = Path(settings["SHARED_DIR"] or data_dir)
    settings["SHARED_DIR"] = str(shared_dir)
    if not settings["UPLOAD_DIR"]:
        settings["UPLOAD_DIR"] = str(shared_dir / "files")
    if not settings["SECRET_KEY"]:
        if settings["MODE"] == "server":
            raise ConfigError("server mode needs PORTAL_SECRET_KEY (a long random string)")
        settings["SECRET_KEY"] = _local_secret_key(data_dir)
    return settings


def _local_secret_key(data_dir: Path) -> str:
    """A per-installation key kept next to the local database, readable by its owner only."""
    path = data_dir / "secret_key"
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key)
    return key


def flask_config(settings: dict[str, Any]) -> dict[str, Any]:
    """Translate portal settings into the names Flask and its extensions read."""
    desktop = settings["MODE"] == "desktop"
    engine_options: dict[str, Any] = {}
    if settings["DATABASE_URL"].startswith("sqlite"):
        engine_options["connect_args"] = {"timeout": 15, "check_same_thread": False}
    else:
        engine_options["pool_pre_ping"] = True
    return {
        "PORTAL": settings,
        "SECRET_KEY": settings["SECRET_KEY"],
        "SQLALCHEMY_DATABASE_URI": settings["DATABASE_URL"],
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Strict" if desktop else "Lax",
        "SESSION_COOKIE_SECURE": settings["SESSION_COOKIE_SECURE"],
        "SESSION_COOKIE_NAME": "portal_session",
        "REMEMBER_COOKIE_DURATION": 0,
        "MAX_CONTENT_LENGTH": (settings["MAX_UPLOAD_MB"] + 1) * 1024 * 1024,
        "RATELIMIT_STORAGE_URI": settings["RATELIMIT_STORAGE_URI"],
        "RATELIMIT_HEADERS_ENABLED": True,
        "WTF_CSRF_TIME_LIMIT": None,
        "PAGE_SIZE": settings["PAGE_SIZE"],
    }
