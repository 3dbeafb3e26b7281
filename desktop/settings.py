"""Launcher settings: the `[desktop]` table of the same config.toml files the portal reads.

    [portal]
    idle_logout_minutes = 10     # read by the portal itself
    [desktop]
    backups_to_keep = 7          # daily backups kept in <data dir>/backups/daily
    daily_backup = true

Precedence as for the portal: built-in < machine-wide file < per-user file < command line.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from desktop.problems import SettingsProblem
from portal.config import machine_config_path, user_config_path


@dataclass(frozen=True)
class DesktopSettings:
    backups_to_keep: int = 7
    daily_backup: bool = True


def _read_table(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SettingsProblem("Cannot read a settings file", f"{path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsProblem("A settings file is not valid TOML", f"{path}: {exc}") from exc
    table = data.get("desktop", {})
    return table if isinstance(table, dict) else {}


def load_desktop_settings() -> DesktopSettings:
    settings = DesktopSettings()
    known = {field.name: field.type for field in fields(DesktopSettings)}
    for path in (machine_config_path(), user_config_path()):
        for name, value in _read_table(path).items():
            key = name.lower()
            if key not in known:
                raise SettingsProblem("Unknown launcher setting", f"{path}: [desktop] {name}")
            expected = bool if known[key] in (bool, "bool") else int
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise SettingsProblem(
                    "Invalid launcher setting",
                    f"{path}: [desktop] {name} must be {expected.__name__}, not {value!r}",
                )
            if expected is int and value < 1:
                raise SettingsProblem(
                    "Invalid launcher setting", f"{path}: [desktop] {name} must be at least 1"
                )
            settings = replace(settings, **{key: value})
    return settings
