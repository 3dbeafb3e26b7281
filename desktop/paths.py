"""Where the desktop copy keeps its files: one data directory per OS user (platformdirs)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from desktop import APP_NAME
from portal.config import default_data_dir

DATA_DIR_ENV = "PORTAL_DATA_DIR"


@dataclass(frozen=True)
class DataPaths:
    """Every file the launcher reads or writes, derived from the data directory."""

    data_dir: Path
    log_dir: Path

    @property
    def database(self) -> Path:
        return self.data_dir / "portal.db"

    @property
    def backups_dir(self) -> Path:
        return self.data_dir / "backups"

    @property
    def lock_file(self) -> Path:
        return self.data_dir / "campus-portal.lock"

    @property
    def instance_file(self) -> Path:
        """Port and control key of the running launcher (owner-only), for a second start."""
        return self.data_dir / "campus-portal.instance"

    @property
    def window_state_file(self) -> Path:
        return self.data_dir / "window.json"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "campus-portal.log"


def resolve(data_dir: Path | str | None = None, *, demo: bool = False) -> DataPaths:
    """--data-dir, else PORTAL_DATA_DIR, else the platform's per-user data directory.

    --demo uses the `demo` folder inside the chosen one, whichever it is, so demo data never
    mixes with real data. Logs go to the platform's per-user log directory for the standard
    locations, and to `<data dir>/logs` for a data directory chosen explicitly (so that two
    copies never share one rotating log file).
    """
    if data_dir:
        chosen = Path(data_dir).expanduser().resolve()
        chosen = chosen / "demo" if demo else chosen
        return DataPaths(chosen, _logs_in(chosen))
    from_env = os.environ.get(DATA_DIR_ENV)
    base = Path(from_env).expanduser().resolve() if from_env else default_data_dir()
    chosen = base / "demo" if demo else base
    if from_env:
        return DataPaths(chosen, _logs_in(chosen))
    log_base = Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))
    return DataPaths(chosen, log_base / "demo" if demo else log_base)


def _logs_in(data_dir: Path) -> Path:
    return Path(data_dir).expanduser().resolve() / "logs"
