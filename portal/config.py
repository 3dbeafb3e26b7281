"""Settings: defaults < machine-wide file < per-user file < environment < explicit overrides.

The machine-wide file may lock keys (`[policy] locked = [...]`): a locked key keeps the value of
the machine-wide file (or its default), and a per-user file, environment variable or override that
sets it is ignored with a warning (logged, and shown on the About page). Which keys IT may lock
is declared in SETTINGS (`lockable`).

Each setting is declared once, in SETTINGS below (name, type, default, help, the table of the
settings files it lives in and the layers that may set it). The reader, the defaults, the
environment variables, the launcher's `[desktop]` settings and the README's settings tables are
all derived from that declaration (tests/config checks the README against it).
"""

from __future__ import annotations

import copy
import ipaddress
import logging
import os
import secrets
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

log = logging.getLogger(__name__)

APP_NAME = "campus-portal"
ENV_PREFIX = "PORTAL_"

# The layers a setting may come from, lowest first (after its built-in default).
FILES = "files"  # the machine-wide file, then the per-user file
ENVIRONMENT = "environment"  # PORTAL_<KEY>
OVERRIDES = "overrides"  # command-line flags of the launcher, create_app(config)
EVERY_LAYER = frozenset({FILES, ENVIRONMENT, OVERRIDES})

# The tables of a settings file: the portal's keys may also stand at the top level.
PORTAL = "portal"
DESKTOP = "desktop"
TABLES = (PORTAL, DESKTOP)
POLICY = "policy"  # the machine-wide file's `[policy]` table: `locked = ["server_url", ...]`


@dataclass(frozen=True)
class Setting:
    """One setting: `name` is the key in the files (lower case); `key` the name in code."""

    name: str
    type: type
    default: str | int | bool | list[str] | dict[str, str]
    help: str
    table: str = PORTAL
    layers: frozenset[str] = EVERY_LAYER
    minimum: int | None = None
    choices: tuple[str, ...] = ()
    documented_default: str | None = None  # the README's words when the default is derived
    lockable: bool = False  # the machine-wide file may lock it ([policy] locked = [...])

    @property
    def key(self) -> str:
        return self.name.upper()

    @property
    def environment_variable(self) -> str:
        return ENV_PREFIX + self.key

    def default_text(self) -> str:
        if self.documented_default is not None:
            return self.documented_default
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        if isinstance(self.default, list):
            return "`[" + ", ".join(f'"{item}"' for item in self.default) + "]`"
        if isinstance(self.default, dict):
            return "empty" if not self.default else f"`{self.default}`"
        return f"`{self.default}`" if self.default != "" else "empty"


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "mode",
        str,
        "desktop",
        "`desktop` (local SQLite) or `server` (central server)",
        choices=("desktop", "server"),
    ),
    Setting(
        "database_url",
        str,
        "",
        "SQLAlchemy URL; required in server mode (`postgresql+psycopg://...`)",
        documented_default="SQLite file in the data dir",
    ),
    Setting(
        "database_prepared_statements",
        bool,
        True,
        "let psycopg prepare statements on the PostgreSQL server; `false` when "
        "`database_url` goes through PgBouncer in transaction pooling",
    ),
    Setting(
        "secret_key",
        str,
        "",
        "signs sessions; required in server mode",
        documented_default="generated once per installation (desktop)",
    ),
    Setting(
        "data_dir",
        str,
        "",
        "database, uploaded files, backups",
        documented_default="the OS user's data dir (`~/.local/share/campus-portal`)",
    ),
    Setting(
        "upload_dir",
        str,
        "",
        "where uploaded files are stored (never served directly)",
        documented_default="`<shared_dir>/files`",
    ),
    Setting("server_url", str, "", "the central server to synchronise with", lockable=True),
    Setting(
        "enrolment_code",
        str,
        "",
        "code a new device presents to the central server",
        lockable=True,
    ),
    Setting(
        "ca_file",
        str,
        "",
        "a PEM file of certificate authorities trusted for `server_url` besides the operating "
        "system's store (a campus certificate authority)",
        documented_default="empty (the OS's store only)",
        lockable=True,
    ),
    Setting(
        "update_check",
        bool,
        True,
        "whether the desktop app looks for updates (at most once a day; `false`: no update "
        "request at all)",
        lockable=True,
    ),
    Setting(
        "update_url",
        str,
        "",
        "the signed release repository (TUF) the desktop app updates from",
        documented_default="`<server_url>/updates/`",
        lockable=True,
    ),
    Setting(
        "update_channel",
        str,
        "stable",
        "`stable` or `beta`: which releases the desktop app takes",
        choices=("stable", "beta"),
        lockable=True,
    ),
    Setting(
        "update_pin",
        str,
        "",
        "exactly this version (e.g. `0.2.0`) and no other; never older than the running one",
        lockable=True,
    ),
    Setting(
        "idle_logout_minutes",
        int,
        15,
        "log a portal user out after this much inactivity (0: never)",
        minimum=0,
        lockable=True,
    ),
    Setting("max_upload_mb", int, 20, "largest accepted upload", minimum=1, lockable=True),
    Setting(
        "sync_snapshot_page_rows",
        int,
        20000,
        "rows per page of a device's full sync (its first, or after its scope changed)",
        minimum=1,
    ),
    Setting(
        "ratelimit_storage_uri",
        str,
        "memory://",
        "Flask-Limiter storage; `redis://...` on the central server",
    ),
    Setting(
        "login_rate_limit",
        str,
        "10 per minute",
        "log-in attempts per client address on the central server (a desktop copy limits each "
        "account instead: see Security)",
    ),
    Setting(
        "log_level",
        str,
        "INFO",
        "level of the central server's log lines: `DEBUG`, `INFO`, `WARNING` or `ERROR`",
    ),
    Setting("session_cookie_secure", bool, False, "set `true` behind HTTPS"),
    Setting("page_size", int, 25, "rows per page in lists", minimum=1),
    Setting(
        "default_language",
        str,
        "en",
        "the portal's language for a person who chose none on their profile and whose browser "
        "asks for none of `en` (English), `ar` (Arabic) or `fr` (French)",
        choices=("en", "ar", "fr"),
    ),
    Setting(
        "timezone",
        str,
        "",
        "the campus time zone (IANA name, e.g. `Africa/Cairo`) that dates and times are shown in",
        documented_default="the server's own time zone",
    ),
    Setting(
        "shared_dir",
        str,
        "",
        "files every server instance must see: `files/` (uploads, unless `upload_dir` is set) "
        "and `imports/` (CSV imports); a shared mount when there are several hosts",
        documented_default="the data dir",
    ),
    Setting(
        "job_queue_url",
        str,
        "",
        "`redis://...` on the central server: long jobs (CSV imports) run on RQ workers "
        "(`campus-portal-server worker`); empty: in a thread of the portal itself (the desktop)",
    ),
    Setting(
        "api_rate_limit",
        str,
        "600 per minute",
        "API calls per token (or per signed-in user of a browser session, else per address)",
    ),
    Setting(
        "metrics_allowed_addresses",
        str,
        "127.0.0.1, ::1",
        "client addresses or networks (e.g. `10.0.5.0/24`) that may read `/metrics`",
    ),
    Setting(
        "login_concurrency",
        int,
        2,
        "log-ins hashed at once per server process; more wait (below)",
        minimum=1,
    ),
    Setting(
        "login_wait_seconds",
        int,
        5,
        'how long a log-in waits for its turn before "busy, try again" (503 with Retry-After)',
        minimum=0,
    ),
    Setting(
        "lock_wait_seconds",
        int,
        15,
        'how long a change waits for records another change holds before "busy, try again" '
        "(503 with Retry-After); PostgreSQL's `lock_timeout`, SQLite's busy timeout. Keep it "
        "well below the web worker's timeout (60 s)",
        minimum=1,
    ),
    Setting(
        "sign_in_methods",
        list,
        ["local"],
        "what the log-in page offers: `local` (the portal's own accounts) and `ldap` (the "
        "campus directory) check the username and password typed into its form; `oidc` adds "
        'the button "Sign in with your campus account" (the campus single sign-on); any of '
        'them, e.g. `["oidc", "local"]`',
        choices=("local", "ldap", "oidc"),
    ),
    Setting(
        "ldap_url",
        str,
        "",
        "the campus directory: `ldaps://host` (TLS) or `ldap://host` with `ldap_starttls`; "
        "the certificate is always verified (Installers: Campus sign-in)",
    ),
    Setting(
        "ldap_starttls",
        bool,
        True,
        "with an `ldap://` URL, switch to TLS (StartTLS) before the password is sent; "
        "`false` only for a directory on the same host (`ldap://127.0.0.1`)",
    ),
    Setting(
        "ldap_ca_file",
        str,
        "",
        "a PEM file of the certificate authorities trusted for the directory (the campus CA), "
        "instead of the operating system's store",
        documented_default="empty (the OS's store)",
    ),
    Setting(
        "ldap_user_dn_template",
        str,
        "",
        "the person's entry, built from the username: "
        "`uid={username},ou=people,dc=campus,dc=example`; empty: found by the search below",
    ),
    Setting(
        "ldap_search_base",
        str,
        "",
        "where the search for the person's entry starts (`ou=people,dc=campus,dc=example`)",
    ),
    Setting(
        "ldap_search_filter",
        str,
        "(uid={username})",
        "the search's filter; Active Directory: `(sAMAccountName={username})`",
    ),
    Setting(
        "ldap_bind_dn",
        str,
        "",
        "the service account the search binds as (empty: an anonymous search)",
    ),
    Setting(
        "ldap_bind_password",
        str,
        "",
        "the service account's password: from the environment only "
        "(`PORTAL_LDAP_BIND_PASSWORD`), or `ldap_bind_password_file`",
        layers=frozenset({ENVIRONMENT, OVERRIDES}),
    ),
    Setting(
        "ldap_bind_password_file",
        str,
        "",
        "a file holding the service account's password, readable by the service's account only "
        "(mode 600 or 400)",
    ),
    Setting(
        "ldap_name_attribute",
        str,
        "displayName",
        "the directory attribute with the person's name (`cn` when `displayName` is empty)",
    ),
    Setting("ldap_email_attribute", str, "mail", "the directory attribute with the e-mail"),
    Setting(
        "ldap_group_roles",
        dict,
        {},
        "portal role → the DN of the group whose members get it, e.g. "
        '`{ admin = "cn=portal-admins,ou=groups,dc=campus,dc=example" }`; the highest role '
        "wins; a person in none of them is a student, or is refused when `student` has a group "
        "too",
    ),
    Setting(
        "oidc_issuer",
        str,
        "",
        "the campus single sign-on (OpenID Connect) provider: its issuer URL, where "
        "`/.well-known/openid-configuration` is found; `https://`, or `http://` on this host "
        "only (`http://127.0.0.1:8080`). The provider sends people back to "
        "`<server>/login/oidc/callback` (Installers: Campus sign-in)",
    ),
    Setting(
        "oidc_ca_file",
        str,
        "",
        "a PEM file of the certificate authorities trusted for the single sign-on provider "
        "(the campus CA), instead of the operating system's store",
        documented_default="empty (the OS's store)",
    ),
    Setting(
        "oidc_client_id",
        str,
        "",
        "the portal's client ID, given by the provider when IT registers the portal",
    ),
    Setting(
        "oidc_client_secret",
        str,
        "",
        "the portal's client secret: from the environment only (`PORTAL_OIDC_CLIENT_SECRET`), "
        "or `oidc_client_secret_file`; empty: a public client (PKCE only)",
        layers=frozenset({ENVIRONMENT, OVERRIDES}),
    ),
    Setting(
        "oidc_client_secret_file",
        str,
        "",
        "a file holding the client secret, readable by the service's account only "
        "(mode 600 or 400)",
    ),
    Setting(
        "oidc_scopes",
        list,
        ["openid", "profile", "email"],
        "the scopes asked for (`openid` is required); add the one that brings the groups claim "
        "where the provider needs it (Keycloak: a `groups` client scope)",
    ),
    Setting(
        "oidc_username_claim",
        str,
        "preferred_username",
        "the ID token's claim that holds the person's portal username (lower-case letters, "
        "digits, `.`, `_`, `-`; a value that is not one is refused with a message)",
    ),
    Setting(
        "oidc_groups_claim",
        str,
        "groups",
        "the ID token's claim that lists the person's groups (Entra ID: `groups` or `roles`)",
    ),
    Setting(
        "oidc_group_roles",
        dict,
        {},
        "portal role → the value in the groups claim whose holders get it, e.g. "
        '`{ admin = "portal-admins", instructor = "teaching-staff" }`; the highest role wins; '
        "a person with none of them is a student, or is refused when `student` has a group too",
    ),
    Setting(
        "campus_password_url",
        str,
        "",
        "where campus accounts change their password (`https://...`): the portal's password "
        "page, which tells a campus account that its password is not changed here, links to it",
    ),
    Setting(
        "offline_sign_in_days",
        int,
        14,
        "how long a desktop copy accepts a campus account's password offline after the "
        "person's last online sign-in (through the central server)",
        minimum=1,
        lockable=True,
    ),
    Setting(
        "campus_sign_in_flow",
        str,
        "browser",
        'on a desktop copy whose central server offers single sign-on: how "Sign in with your '
        "campus account\" works. `browser`: the system browser opens the server's sign-in page "
        "(a code to type on a phone is offered too); `device_code`: only a code to type on a "
        "phone or another computer, no browser is opened (shared PCs where none may be)",
        choices=("browser", "device_code"),
        lockable=True,
    ),
    Setting(
        "offline_failed_attempts",
        int,
        5,
        "on a desktop copy, wrong passwords in a row for one account before its next try waits "
        "(5 s, twice as long after each further wrong one, at most 15 minutes)",
        minimum=1,
        lockable=True,
    ),
    Setting(
        "backups_to_keep",
        int,
        7,
        "daily backups kept in `<data dir>/backups/daily`",
        table=DESKTOP,
        layers=frozenset({FILES}),
        minimum=1,
        lockable=True,
    ),
    Setting(
        "daily_backup",
        bool,
        True,
        "copy the database once a day while the app runs",
        table=DESKTOP,
        layers=frozenset({FILES}),
        lockable=True,
    ),
)

BY_KEY: dict[str, Setting] = {setting.key: setting for setting in SETTINGS}


def declared(table: str) -> tuple[Setting, ...]:
    """The settings of one table of the settings files, in the order they are documented."""
    return tuple(setting for setting in SETTINGS if setting.table == table)


def settings_table(table: str) -> str:
    """The README's Markdown table of one table's settings (tests/config compares the two)."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.name}` | {s.default_text()} | {s.help} |" for s in declared(table)]
    return "\n".join(rows)


def lockable_text() -> str:
    """The IT guide's list of the keys the machine-wide file may lock (tests/config checks it)."""
    return ", ".join(f"`{setting.name}`" for setting in SETTINGS if setting.lockable)


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


def _coerce(setting: Setting, value: Any, source: str, label: str) -> Any:
    """`value` as the setting's type, or ConfigError naming `source` and `label`."""
    where = f"{source}: {label}"
    if setting.type is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{where} must be true or false, not {value!r}")
    if setting.type is list:
        return _coerce_list(setting, value, where)
    if setting.type is dict:
        return _coerce_table(value, where)
    if isinstance(value, dict | list):
        raise ConfigError(f"{where} must be a single value, not {value!r}")
    if setting.type is int:
        try:
            if isinstance(value, bool | float):
                raise TypeError(value)
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a whole number, not {value!r}") from None
        if setting.minimum is not None and number < setting.minimum:
            raise ConfigError(f"{where} must be at least {setting.minimum}, not {number}")
        return number
    text = str(value)
    if setting.choices and text not in setting.choices:
        allowed = " or ".join(repr(choice) for choice in setting.choices)
        raise ConfigError(f"{where} must be {allowed}, not {value!r}")
    return text


def _coerce_list(setting: Setting, value: Any, where: str) -> list[str]:
    """A list of names: a TOML array, or (from the environment) `a, b` or `["a", "b"]`."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = tomllib.loads(f"value = {text}")["value"]
            except tomllib.TOMLDecodeError:
                raise ConfigError(f"{where} must be a list such as {setting.default!r}") from None
        else:
            value = [item.strip() for item in text.split(",") if item.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where} must be a list of names, not {value!r}")
    if not value:
        raise ConfigError(f"{where} must name at least one")
    unknown = [item for item in value if setting.choices and item not in setting.choices]
    if unknown:
        allowed = ", ".join(repr(choice) for choice in setting.choices)
        raise ConfigError(f"{where}: {unknown[0]!r} is not one of {allowed}")
    return list(dict.fromkeys(value))


def _coerce_table(value: Any, where: str) -> dict[str, str]:
    """A table of names to text: a TOML table, or (from the environment) an inline table
    `{ admin = "cn=...", teacher = "cn=..." }`."""
    if isinstance(value, str):
        try:
            value = tomllib.loads(f"value = {value.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            raise ConfigError(
                f'{where} must be a table such as {{ admin = "cn=admins,dc=example" }}'
            ) from None
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise ConfigError(f"{where} must be a table of names to text, not {value!r}")
    return {str(key): item for key, item in value.items()}


def _file_entries(data: dict[str, Any], path: Path) -> Iterable[tuple[str, str, Any, str]]:
    """(table, name, value, label) for every key of a parsed file; top-level keys are the
    portal's. The label is the key as a dotted TOML name (`desktop.daily_backup`). The
    `[policy]` table is read by _policy."""
    for name, value in data.items():
        setting = BY_KEY.get(name.upper())
        if not isinstance(value, dict) or (setting is not None and setting.type is dict):
            yield PORTAL, name, value, name
        elif name.lower() in TABLES:
            for inner, inner_value in value.items():
                yield name.lower(), inner, inner_value, f"{name}.{inner}"
        elif name.lower() != POLICY:
            raise ConfigError(f"settings file {path}: unknown table [{name}]")


def _parse_file(path: Path) -> dict[str, Any]:
    """A settings file's TOML; a missing file is empty."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc.strerror}") from exc
    try:
        return tomllib.loads(raw.decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"settings file {path} is not valid TOML: {exc}") from exc


def _values(data: dict[str, Any], path: Path) -> dict[str, Any]:
    source = f"settings file {path}"
    values: dict[str, Any] = {}
    for table, name, value, label in _file_entries(data, path):
        setting = BY_KEY.get(name.upper())
        if setting is None or FILES not in setting.layers:
            raise ConfigError(f"{source}: unknown setting {label!r}")
        if setting.table != table:
            raise ConfigError(f"{source}: {label!r} belongs in the [{setting.table}] table")
        if setting.key in values:
            raise ConfigError(f"{source}: {setting.name!r} is set twice")
        values[setting.key] = _coerce(setting, value, source, label)
    return values


def _policy(data: dict[str, Any], path: Path) -> frozenset[str]:
    """The KEYs a file's `[policy]` table locks (`locked = ["server_url", ...]`)."""
    table = next((v for k, v in data.items() if k.lower() == POLICY), None)
    if table is None:
        return frozenset()
    source = f"settings file {path}: [{POLICY}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{source} must be a table")
    unknown = sorted(set(table) - {"locked"})
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r} (only `locked`)")
    names = table.get("locked", [])
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ConfigError(f"{source}: locked must be a list of setting names")
    keys = set()
    for name in names:
        setting = BY_KEY.get(name.split(".")[-1].upper())
        if setting is None:
            raise ConfigError(f"{source}: unknown setting {name!r} in locked")
        if not setting.lockable:
            lockable = ", ".join(s.name for s in SETTINGS if s.lockable)
            raise ConfigError(f"{source}: {name!r} cannot be locked (only {lockable})")
        keys.add(setting.key)
    return frozenset(keys)


def read_config_file(path: Path) -> dict[str, Any]:
    """Read one TOML settings file into {KEY: value}; keys are case-insensitive.

    The portal's keys stand at the top level or in a `[portal]` table, the launcher's in a
    `[desktop]` table. A missing file is empty. Broken TOML, an unknown key or table, a key
    set twice or a value of the wrong type raise ConfigError naming the file and the key.
    """
    data = _parse_file(path)
    _policy(data, path)
    return _values(data, path)


def locked_keys() -> frozenset[str]:
    """The KEYs the machine-wide file locks."""
    path = machine_config_path()
    return _policy(_parse_file(path), path)


def _ignored(setting: Setting, where: str) -> str:
    return (
        f"{setting.name} is locked by IT in the machine-wide file {machine_config_path()}: "
        f"the value from {where} is ignored"
    )


def load_table(table: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings of one table, every layer merged, lowest first.

    Keys of `overrides` that are not settings of this table are passed through unchanged.
    A key the machine-wide file locks keeps that file's value (or its default): a higher layer
    that sets it is ignored, with a warning in the log.
    """
    settings, warnings = load_table_with_warnings(table, overrides)
    for warning in warnings:
        log.warning("%s", warning)
    return settings


def load_table_with_warnings(
    table: str, overrides: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """load_table, and the warnings about locked keys that a higher layer tried to set."""
    settings: dict[str, Any] = {
        setting.key: copy.copy(setting.default) for setting in declared(table)
    }
    warnings: list[str] = []
    machine_path, user_path = machine_config_path(), user_config_path()
    machine_data = _parse_file(machine_path)
    locked = _policy(machine_data, machine_path)
    settings.update(
        {k: v for k, v in _values(machine_data, machine_path).items() if BY_KEY[k].table == table}
    )
    user_data = _parse_file(user_path)
    if _policy(user_data, user_path) and table == PORTAL:
        warnings.append(
            f"settings file {user_path}: [{POLICY}] is read from the machine-wide file only: "
            "ignored"
        )
    for key, value in _values(user_data, user_path).items():
        if BY_KEY[key].table != table:
            continue
        if key not in locked:
            settings[key] = value
        elif value != settings[key]:
            warnings.append(_ignored(BY_KEY[key], f"the settings file {user_path}"))
    for setting in declared(table):
        env_value = os.environ.get(setting.environment_variable)
        if ENVIRONMENT in setting.layers and env_value is not None and env_value != "":
            source = f"environment variable {setting.environment_variable}"
            value = _coerce(setting, env_value, source, setting.key)
            if setting.key not in locked:
                settings[setting.key] = value
            elif value != settings[setting.key]:
                warnings.append(_ignored(setting, f"the {source}"))
    for key, value in (overrides or {}).items():
        overridden = BY_KEY.get(key)
        if overridden is None or overridden.table != table:
            settings[key] = value
        elif OVERRIDES not in overridden.layers:
            raise ConfigError(f"{key} cannot be set from the command line")
        else:
            coerced = _coerce(overridden, value, "override", key)
            if key not in locked:
                settings[key] = coerced
            elif coerced != settings[key]:
                warnings.append(_ignored(overridden, "the command line"))
    return settings, warnings


def load_settings(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The portal's settings, every layer merged, with the derived paths filled in.

    `LOCKED` lists the names the machine-wide file locks, `POLICY_WARNINGS` the values that were
    ignored because of it (the About page shows both)."""
    settings, warnings = load_table_with_warnings(PORTAL, overrides)
    warnings += load_table_with_warnings(DESKTOP)[1]
    for warning in warnings:
        log.warning("%s", warning)
    settings["LOCKED"] = sorted(BY_KEY[key].name for key in locked_keys())
    settings["POLICY_WARNINGS"] = warnings
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
    if "ldap" in settings["SIGN_IN_METHODS"]:
        _check_directory(settings)
    if "oidc" in settings["SIGN_IN_METHODS"]:
        _check_single_sign_on(settings)
    url = settings["CAMPUS_PASSWORD_URL"]
    if url and (
        urlsplit(url).scheme.lower() not in ("https", "http") or not urlsplit(url).hostname
    ):
        raise ConfigError(f"campus_password_url must be an https:// address, not {url!r}")
    settings["TIMEZONE"] = _time_zone(settings["TIMEZONE"])
    return settings


def _time_zone(name: str) -> str:
    """The campus time zone's IANA name: the setting's, checked, else this computer's own."""
    import zoneinfo

    if not name:
        from babel.localtime import get_localzone

        zone = get_localzone()  # a zoneinfo zone (its `key`) or, with pytz installed, a pytz one
        local = getattr(zone, "key", None) or getattr(zone, "zone", None) or str(zone)
        try:
            zoneinfo.ZoneInfo(local)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return "UTC"
        return str(local)
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"timezone: {name!r} is not a time zone name such as 'Europe/Paris' or 'UTC'"
        ) from None
    return name


def _check_directory(settings: dict[str, Any]) -> None:
    """The directory settings make sense together; the service account's password is read
    from `ldap_bind_password_file` when it is given there."""
    from portal.models import ROLES  # the roles are declared with the accounts

    if settings["MODE"] != "server":
        raise ConfigError(
            "sign_in_methods: ldap is for the central server; a desktop copy offers local "
            "accounts only"
        )
    url = settings["LDAP_URL"]
    if not url.lower().startswith(("ldap://", "ldaps://")):
        raise ConfigError(
            f"sign_in_methods has ldap: ldap_url must be ldaps://host or ldap://host, not {url!r}"
        )
    host = urlsplit(url).hostname or ""
    plain = url.lower().startswith("ldap://") and not settings["LDAP_STARTTLS"]
    if plain and host != "localhost" and not _loopback(host):
        raise ConfigError(
            f"ldap_starttls = false sends passwords in the clear to {host}: only for a "
            "directory on this host (127.0.0.1); use ldaps:// or StartTLS"
        )
    unknown = sorted(set(settings["LDAP_GROUP_ROLES"]) - set(ROLES))
    if unknown:
        raise ConfigError(
            f"ldap_group_roles: {unknown[0]!r} is not a portal role ({', '.join(ROLES)})"
        )
    if not settings["LDAP_USER_DN_TEMPLATE"] and not settings["LDAP_SEARCH_BASE"]:
        raise ConfigError(
            "sign_in_methods has ldap: set ldap_user_dn_template "
            "(uid={username},ou=people,...) or ldap_search_base"
        )
    template = settings["LDAP_USER_DN_TEMPLATE"] or settings["LDAP_SEARCH_FILTER"]
    if "{username}" not in template:
        raise ConfigError(f"{template!r} must contain {{username}}")
    if settings["LDAP_CA_FILE"] and not Path(settings["LDAP_CA_FILE"]).is_file():
        raise ConfigError(f"ldap_ca_file {settings['LDAP_CA_FILE']} does not exist")
    if path := settings["LDAP_BIND_PASSWORD_FILE"]:
        settings["LDAP_BIND_PASSWORD"] = _secret_file(Path(path), "ldap_bind_password_file")


def _check_single_sign_on(settings: dict[str, Any]) -> None:
    """The single sign-on (OIDC) settings make sense together; the client secret is read from
    `oidc_client_secret_file` when it is given there."""
    from portal.models import ROLES  # the roles are declared with the accounts

    if settings["MODE"] != "server":
        raise ConfigError(
            "sign_in_methods: oidc is for the central server; a desktop copy signs in through it"
        )
    issuer = settings["OIDC_ISSUER"]
    parts = urlsplit(issuer)
    host = parts.hostname or ""
    scheme = parts.scheme.lower()
    if not host or scheme not in ("https", "http"):
        raise ConfigError(
            f"sign_in_methods has oidc: oidc_issuer must be an https:// address, not {issuer!r}"
        )
    if scheme == "http" and host != "localhost" and not _loopback(host):
        raise ConfigError(
            f"oidc_issuer {issuer} is not https://: plain http is only for a provider on this "
            "host (127.0.0.1)"
        )
    if not settings["OIDC_CLIENT_ID"]:
        raise ConfigError("sign_in_methods has oidc: set oidc_client_id (from the provider)")
    if "openid" not in settings["OIDC_SCOPES"]:
        raise ConfigError("oidc_scopes must include openid")
    unknown = sorted(set(settings["OIDC_GROUP_ROLES"]) - set(ROLES))
    if unknown:
        raise ConfigError(
            f"oidc_group_roles: {unknown[0]!r} is not a portal role ({', '.join(ROLES)})"
        )
    if settings["OIDC_CA_FILE"] and not Path(settings["OIDC_CA_FILE"]).is_file():
        raise ConfigError(f"oidc_ca_file {settings['OIDC_CA_FILE']} does not exist")
    if path := settings["OIDC_CLIENT_SECRET_FILE"]:
        settings["OIDC_CLIENT_SECRET"] = _secret_file(Path(path), "oidc_client_secret_file")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secret_file(path: Path, name: str) -> str:
    """A secret's file: readable by the service's own account only (on POSIX systems)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from exc
    if os.name == "posix" and mode & 0o077:
        raise ConfigError(
            f"{name}: {path} may be read by other accounts (mode {mode & 0o777:o}); "
            f"make it readable by the service only: chmod 600 {path}"
        )
    return text


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
        engine_options["connect_args"] = {
            "timeout": settings["LOCK_WAIT_SECONDS"],
            "check_same_thread": False,
        }
    else:
        engine_options["pool_pre_ping"] = True
        if not settings["DATABASE_PREPARED_STATEMENTS"]:
            # A transaction pooler hands each transaction to any server connection, where a
            # statement psycopg prepared on another one does not exist.
            engine_options["connect_args"] = {"prepare_threshold": None}
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
        # A file of MAX_UPLOAD_MB and the form around it; the form's text fields and its number
        # of parts have their own limits (portal/multipart.py says which one a body passed).
        "MAX_CONTENT_LENGTH": (settings["MAX_UPLOAD_MB"] + 1) * 1024 * 1024,
        "MAX_FORM_MEMORY_SIZE": 500 * 1024,
        "MAX_FORM_PARTS": 100,
        "RATELIMIT_STORAGE_URI": settings["RATELIMIT_STORAGE_URI"],
        "RATELIMIT_HEADERS_ENABLED": True,
        "WTF_CSRF_TIME_LIMIT": None,
        "PAGE_SIZE": settings["PAGE_SIZE"],
    }
