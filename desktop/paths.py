"""Where the desktop copy keeps its files: one data directory per OS user (platformdirs)."""

from __future__ import annotations

import os
import stat
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
    def template_cache_dir(self) -> Path:
        """Compiled templates (desktop/template_cache.py)."""
        return self.data_dir / "cache" / "templates"

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


OWNER_ONLY_UMASK = 0o077


def keep_private() -> None:
    """Files and folders this process creates are its OS user's alone (600 and 700): the data
    holds grades, and import reports hold one-time passwords. POSIX only; on Windows the
    per-user folders already are private to the user."""
    if os.name == "posix":
        os.umask(OWNER_ONLY_UMASK)


def make_owner_only(folder: Path) -> None:
    """Take group and other permissions off a folder made before this rule (or by hand), and
    off everything in it: folders 700, files 600 (owner permissions are left as they are).

    Only walks the tree when the folder itself was open to others, so a normal start costs one
    stat; a folder that is not ours (a shared --data-dir) is left as it is."""
    if os.name != "posix":
        return
    info = folder.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077 == 0:
        return
    for root, folders, files in os.walk(folder):
        for name in [*folders, *files]:
            _restrict(Path(root) / name)
    _restrict(folder)


def _restrict(path: Path) -> None:
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
            return
        if stat.S_IMODE(info.st_mode) & 0o077:
            path.chmod(stat.S_IMODE(info.st_mode) & 0o700)
    except OSError:
        pass  # a file that vanished meanwhile, or one we may not change: left as it is
