"""What can stop the launcher before the portal is up, said so that a person can act on it."""

from __future__ import annotations

from pathlib import Path

from desktop.i18n import _

# Exit codes of `campus-portal` (documented in the README).
EXIT_OK = 0
EXIT_ALREADY_RUNNING = 1
EXIT_DATA_DIR = 2
EXIT_DATABASE = 3
EXIT_SETTINGS = 4
EXIT_NOT_RUNNING = 5
EXIT_USAGE = 64  # a wrong command line (sysexits' EX_USAGE; argparse's own 2 is taken)
# `campus-portal enrol` and `campus-portal sync`: why a sync did not get through (the README's
# table; the reasons are portal.sync.device.client.SyncError's).
EXIT_SYNC = {
    "unreachable": 10,  # no network, the server is down
    "revoked": 11,  # an administrator revoked this computer
    "protocol": 12,  # the server does not speak this version
    "refused": 13,  # the server refused (a used code, a code for another account)
    "busy": 14,  # the server had a problem or is busy
    "local": 15,  # this data folder cannot do what was asked (nothing was sent)
    "untrusted": 17,  # the server's certificate is not trusted here (ca_file, the OS's store)
}
EXIT_SYNC_OTHER = 16  # the server's answer could not be used (nothing of it was kept)


class LauncherProblem(Exception):
    """A condition the user (or IT) must fix; nothing was changed on disk when it is raised."""

    exit_code = EXIT_DATABASE
    shown_in_window = False  # the portal's window already showed it (no second window)

    def __init__(self, title: str, detail: str, *, backups: list[Path] | None = None) -> None:
        super().__init__(f"{title}: {detail}")
        self.title = title
        self.detail = detail
        self.backups = backups or []

    def text(self) -> str:
        """The whole message, as printed on the terminal and shown in the window."""
        lines = [self.title, "", self.detail]
        if self.backups:
            lines += ["", _("Backups of this database, newest first:")]
            lines += [f"  {path}" for path in self.backups[:5]]
            lines += [
                "",
                _("To go back to a backup (the current file is kept next to it first):"),
                f'  campus-portal restore "{self.backups[0]}"',
            ]
        return "\n".join(lines)


class AlreadyRunning(LauncherProblem):
    exit_code = EXIT_ALREADY_RUNNING


class NotRunning(LauncherProblem):
    """`campus-portal open` found nothing running on the data folder."""

    exit_code = EXIT_NOT_RUNNING


class DataDirProblem(LauncherProblem):
    exit_code = EXIT_DATA_DIR


class DatabaseProblem(LauncherProblem):
    exit_code = EXIT_DATABASE


class SettingsProblem(LauncherProblem):
    exit_code = EXIT_SETTINGS


class SyncProblem(LauncherProblem):
    """A sync or an enrolment from the command line did not get through."""

    def __init__(self, title: str, detail: str, reason: str = "error") -> None:
        super().__init__(title, detail)
        self.exit_code = EXIT_SYNC.get(reason, EXIT_SYNC_OTHER)
