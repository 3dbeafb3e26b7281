"""Launcher settings: the `[desktop]` table of the same config.toml files the portal reads.

    [portal]
    idle_logout_minutes = 10     # read by the portal itself
    [desktop]
    backups_to_keep = 7          # daily backups kept in <data dir>/backups/daily
    daily_backup = true

They are declared, read and checked with the portal's own settings (portal/config.py), files
only: built-in < machine-wide file < per-user file (a key the machine-wide file locks keeps its
value there).
"""

from __future__ import annotations

from dataclasses import dataclass

from desktop.i18n import _
from desktop.problems import SettingsProblem
from portal.config import DESKTOP, ConfigError, load_table_with_warnings


@dataclass(frozen=True)
class DesktopSettings:
    """The launcher's settings; their defaults live in portal.config.SETTINGS."""

    backups_to_keep: int
    daily_backup: bool


def load_desktop_settings() -> DesktopSettings:
    try:
        # A locked key set by the user is logged (and shown) by the portal's own settings.
        values, _warnings = load_table_with_warnings(DESKTOP)
    except ConfigError as exc:
        raise SettingsProblem(_("A setting cannot be used"), str(exc)) from exc
    return DesktopSettings(**{key.lower(): value for key, value in values.items()})
