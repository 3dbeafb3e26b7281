"""Updates IT controls: a signed release repository (TUF), checked at most once a day.

The desktop copy trusts one thing: the repository's root metadata that IT puts next to the
machine-wide settings file (`update-root.json`, from `campus-portal-server release init`). With
it, python-tuf's ngclient refreshes the metadata (root -> timestamp -> snapshot -> targets:
signatures, thresholds, expiry, versions never going back), and downloads an installer only
through the length and hashes the signed targets metadata give.

What is taken: among the installers for this OS, the newest version of the channel
(`update_channel`: `stable`, or `beta` which also takes stable), or exactly `update_pin`; never a
version older than (or equal to) the running one, whatever the metadata says. The verified
installer waits in `<data dir>/updates/downloads` and is handed to the OS's installer when the
app exits (Windows: the NSIS installer, silent, per machine, behind the UAC prompt; macOS: the
.pkg through `installer`, behind the administrator prompt; Linux: the About page and the log show
the `apt-get install` command, as installing a .deb is the system's own business).

No request at all when `update_check` is false, when `update_pin` is the running version (or
older), or when no trusted root or repository address is set. The check runs in a background
thread, only while no sync runs and nobody has used the portal for QUIET_SECONDS; every request
has a timeout and the whole check a deadline, and the app never waits for it.

Its state (`<data dir>/updates/state.json`) is what the About page and the log say: up to date
(when last checked), update ready, refused (which check failed), could not check, disabled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from desktop.i18n import N_

log = logging.getLogger(__name__)

CUSTOM = "campus_portal"  # the targets' custom metadata (portal/updates/repository.py)
TRUST_ROOT_NAME = "update-root.json"
CHECK_EVERY = timedelta(days=1)
RETRY_AFTER_FAILURE = timedelta(hours=1)
QUIET_SECONDS = 300.0
READ_TIMEOUT = 30.0  # seconds without a byte: the mirror is given up
CHECK_DEADLINE = 900.0  # seconds for a whole check, download included

DISABLED = "disabled"
PINNED = "pinned"
NOT_SET_UP = "not-set-up"
UP_TO_DATE = "up-to-date"
READY = "ready"
REFUSED = "refused"
FAILED = "failed"
NEVER = "never-checked"

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def current_system() -> str:
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return "linux"


def installed_from_deb() -> bool:
    """The copy runs from /opt/campus-portal as the Debian package installed it."""
    return Path("/var/lib/dpkg/info/campus-portal.list").exists() and Path(
        sys.executable
    ).resolve().is_relative_to("/opt/campus-portal")


def trust_root_path() -> Path:
    """IT's copy of the repository's root metadata, next to the machine-wide settings file."""
    from portal.config import machine_config_path

    return machine_config_path().parent / TRUST_ROOT_NAME


@dataclass(frozen=True)
class UpdateSettings:
    check: bool
    url: str  # the repository's base URL, ending in /
    channel: str
    pin: str
    locked: frozenset[str] = frozenset()  # the update settings IT locked machine-wide
    ca_file: str = ""  # certificate authorities trusted besides the OS's store (as for sync)

    @classmethod
    def from_portal(cls, settings: dict[str, Any]) -> UpdateSettings:
        url = settings["UPDATE_URL"] or (
            settings["SERVER_URL"].rstrip("/") + "/updates/" if settings["SERVER_URL"] else ""
        )
        if url and not url.endswith("/"):
            url += "/"
        return cls(
            check=settings["UPDATE_CHECK"],
            url=url,
            channel=settings["UPDATE_CHANNEL"],
            pin=settings["UPDATE_PIN"].strip(),
            locked=frozenset(settings.get("LOCKED", ())),
            ca_file=settings.get("CA_FILE", ""),
        )


def _in_english(message: str, **variables: object) -> str:
    return message % variables if variables else message


@dataclass
class Status:
    """What the last check found (kept in state.json)."""

    state: str = NEVER
    checked_at: str = ""  # ISO time of the last completed check
    attempted_at: str = ""  # ISO time of the last attempt, completed or not
    version: str = ""  # the update ready to install
    file: str = ""
    sha256: str = ""
    reason: str = ""  # refused: which check failed; failed: why it could not check
    detail: str = ""

    def line(self, say: Callable[..., str] = _in_english) -> str:
        """One sentence for the log (in English) and the About page (`say`: the page's
        gettext, in the person's language)."""
        when = self.checked_at[:16].replace("T", " ")
        if self.state == READY:
            return say(N_("Version %(version)s is ready: install on exit"), version=self.version)
        if self.state == UP_TO_DATE and when:
            return say(N_("Up to date (last checked %(when)s UTC)"), when=when)
        if self.state == UP_TO_DATE:
            return say(N_("Up to date"))
        if self.state == REFUSED:
            return say(N_("Update refused: %(reason)s"), reason=self.reason)
        if self.state == FAILED and when:
            return say(
                N_("Could not check for updates: %(reason)s (last checked %(when)s UTC)"),
                reason=self.reason,
                when=when,
            )
        if self.state == FAILED:
            return say(N_("Could not check for updates: %(reason)s"), reason=self.reason)
        if self.state == DISABLED:
            return say(N_("Updates are turned off on this computer (update_check = false)"))
        if self.state == PINNED:
            return say(
                N_("Pinned to version %(version)s (update_pin): no update is looked for"),
                version=self.version,
            )
        if self.state == NOT_SET_UP:
            return say(
                N_("Updates are not set up on this computer: %(reason)s"), reason=self.reason
            )
        return say(N_("Not checked yet"))


class Refused(Exception):
    """The repository or the installer failed a check: nothing is installed."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class Cancelled(Exception):
    """The app is closing: the check stops."""


def _refusal(error: Exception) -> Refused | None:
    """Which check a tuf error stands for (None: not a refusal, a network failure)."""
    from tuf.api import exceptions

    kinds: list[tuple[type[Exception], str]] = [
        (exceptions.ExpiredMetadataError, "expired metadata"),
        (exceptions.UnsignedMetadataError, "bad signature"),
        (exceptions.BadVersionNumberError, "rollback"),
        (exceptions.LengthOrHashMismatchError, "wrong hash"),
        (exceptions.DownloadLengthMismatchError, "too large"),
        (exceptions.RepositoryError, "invalid metadata"),
    ]
    for kind, reason in kinds:
        if isinstance(error, kind):
            return Refused(reason, str(error))
    return None


def _fetcher(timeout: float, deadline: float, cancelled: threading.Event, ca_file: str = "") -> Any:
    """ngclient's fetcher over httpx: a read timeout per request and a deadline for the check.
    It trusts what sync trusts: the OS's certificate store and IT's `ca_file`."""
    from tuf.api import exceptions
    from tuf.ngclient.fetcher import FetcherInterface

    from portal import __version__
    from portal.sync.device.client import tls_context

    class Fetcher(FetcherInterface):
        def __init__(self) -> None:
            self.client = httpx.Client(
                verify=tls_context(ca_file),
                timeout=httpx.Timeout(timeout),
                headers={"User-Agent": f"campus-portal/{__version__}"},
                follow_redirects=True,
            )
            self.give_up_at = time.monotonic() + deadline

        def _fetch(self, url: str) -> Iterator[bytes]:
            self._check_time()
            try:
                response = self.client.send(self.client.build_request("GET", url), stream=True)
            except httpx.TimeoutException as exc:
                raise exceptions.SlowRetrievalError(f"{url}: no answer in {timeout}s") from exc
            except httpx.HTTPError as exc:
                raise exceptions.DownloadError(f"{url}: {exc}") from exc
            if response.status_code != 200:
                response.close()
                raise exceptions.DownloadHTTPError(
                    f"{url}: HTTP {response.status_code}", response.status_code
                )
            return self._chunks(response, url)

        def _chunks(self, response: httpx.Response, url: str) -> Iterator[bytes]:
            try:
                for chunk in response.iter_bytes():
                    self._check_time()
                    yield chunk
            except httpx.TimeoutException as exc:
                raise exceptions.SlowRetrievalError(f"{url}: no data for {timeout}s") from exc
            except httpx.HTTPError as exc:
                raise exceptions.DownloadError(f"{url}: {exc}") from exc
            finally:
                response.close()

        def _check_time(self) -> None:
            if cancelled.is_set():
                raise exceptions.DownloadError("stopped: the app is closing")
            if time.monotonic() > self.give_up_at:
                raise exceptions.SlowRetrievalError(f"the check took longer than {deadline:.0f}s")

    return Fetcher()


@dataclass
class UpdateCheck:
    """The update check of one data folder; see the module docstring."""

    settings: UpdateSettings
    data_dir: Path
    running_version: str
    trust_root: Path = field(default_factory=trust_root_path)
    system: str = field(default_factory=current_system)
    from_deb: bool = field(default_factory=installed_from_deb)
    now: Clock = utcnow
    timeout: float = READ_TIMEOUT
    deadline: float = CHECK_DEADLINE

    def __post_init__(self) -> None:
        self.installer_process: subprocess.Popen[bytes] | None = None
        self.cancelled = threading.Event()
        self.finished = threading.Event()  # set after each check the background thread ran
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None

    @property
    def folder(self) -> Path:
        return self.data_dir / "updates"

    # --- state ---------------------------------------------------------------------------------

    def status(self) -> Status:
        """The state as the settings make it, else as the last check left it (no request)."""
        quiet = self._no_request_reason()
        if quiet is not None:
            return quiet
        from packaging.version import InvalidVersion, Version

        try:
            data = json.loads((self.folder / "state.json").read_text(encoding="utf-8"))
            status = Status(**{k: v for k, v in data.items() if k in Status.__dataclass_fields__})
        except (OSError, ValueError, TypeError):
            return Status()
        if status.state == READY:
            try:
                installed = Version(status.version) <= Version(self.running_version)
            except InvalidVersion:
                installed = True
            if installed:  # that update is the running version now
                status.state, status.version, status.file, status.sha256 = UP_TO_DATE, "", "", ""
        return status

    def _save(self, status: Status) -> Status:
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / ".state.json.part"
        partial.write_text(json.dumps(asdict(status), indent=2), encoding="utf-8")
        os.replace(partial, self.folder / "state.json")
        return status

    def page(self) -> dict[str, str]:
        """The About page's view of the state (called in the page's request)."""
        from flask_babel import gettext

        status = self.status()
        command = ""
        if status.state == READY and self.system == "linux":
            command = " ".join(linux_install_command(Path(status.file)))
        return {
            "state": status.state,
            "title": status.line(gettext),  # the About page: in the person's language
            "detail": gettext(status.detail) if status.detail else "",  # N_ ones are known
            "command": command,
        }

    def _no_request_reason(self) -> Status | None:
        """Why no update request may be made at all, or None."""
        from packaging.version import InvalidVersion, Version

        if not self.settings.check:
            by_it = "update_check" in self.settings.locked
            return Status(state=DISABLED, detail=N_("Set and locked by IT.") if by_it else "")
        if self.settings.pin:
            try:
                pin, running = Version(self.settings.pin), Version(self.running_version)
            except InvalidVersion:
                return Status(
                    state=NOT_SET_UP, reason=f"update_pin {self.settings.pin!r} is not a version"
                )
            if pin == running:
                by_it = "update_pin" in self.settings.locked
                detail = N_("Set and locked by IT.") if by_it else ""
                return Status(state=PINNED, version=self.settings.pin, detail=detail)
            if pin < running:
                return Status(
                    state=REFUSED,
                    reason=f"rollback: update_pin {pin} is older than this version "
                    f"{running}, and a copy never goes back",
                )
        if not self.settings.url:
            return Status(state=NOT_SET_UP, reason="no server_url or update_url")
        if not self.trust_root.is_file():
            return Status(state=NOT_SET_UP, reason=f"no trusted release root at {self.trust_root}")
        return None

    def due(self) -> bool:
        """Whether a check may run now: allowed, and not done within the day."""
        if self._no_request_reason() is not None:
            return False
        status = self.status()
        last = status.attempted_at
        if not last:
            return True
        wait = RETRY_AFTER_FAILURE if status.state == FAILED else CHECK_EVERY
        try:
            return self.now() >= datetime.fromisoformat(last) + wait
        except ValueError:
            return True

    # --- the check -----------------------------------------------------------------------------

    def run(self) -> Status:
        """One check (refresh, choose, download, verify); returns and records the new state."""
        with self._lock:
            quiet = self._no_request_reason()
            if quiet is not None:
                log.info("update check: %s", quiet.line())
                return quiet
            previous = self.status()
            moment = self.now().replace(microsecond=0).isoformat()
            try:
                status = self._check()
            except Refused as refused:
                status = Status(state=REFUSED, reason=refused.reason, detail=refused.detail)
            except Cancelled:
                log.info("update check stopped: the app is closing")
                return previous
            except Exception as error:
                refusal = _refusal(error)
                if refusal is not None:
                    status = Status(state=REFUSED, reason=refusal.reason, detail=refusal.detail)
                else:
                    status = Status(
                        state=FAILED,
                        reason=_failure_text(error),
                        checked_at=previous.checked_at,
                    )
            status.attempted_at = moment
            if status.state in (UP_TO_DATE, READY, REFUSED):
                status.checked_at = moment
                self._remove_downloads(keep=status.file)
            self._save(status)
            if status.state == REFUSED:
                log.warning("update check: %s (%s)", status.line(), status.detail)
            elif status.state == FAILED:
                log.warning("update check: %s", status.line())
            else:
                log.info("update check: %s", status.line())
            return status

    def _check(self) -> Status:
        from packaging.version import InvalidVersion, Version
        from tuf.ngclient import Updater

        metadata_dir = self.folder / "metadata"
        downloads = self.folder / "downloads"
        metadata_dir.mkdir(parents=True, exist_ok=True)
        downloads.mkdir(parents=True, exist_ok=True)
        fetcher = _fetcher(self.timeout, self.deadline, self.cancelled, self.settings.ca_file)
        try:
            updater = Updater(
                str(metadata_dir),
                self.settings.url + "metadata/",
                str(downloads),
                self.settings.url + "targets/",
                fetcher=fetcher,
                bootstrap=self.trust_root.read_bytes(),
            )
            updater.refresh()
            if self.cancelled.is_set():
                raise Cancelled
            chosen = self._choose(metadata_dir)
            running = Version(self.running_version)
            if chosen is None:
                detail = ""
                if self.settings.pin:
                    detail = f"update_pin {self.settings.pin} is not released for {self.system}"
                return Status(state=UP_TO_DATE, detail=detail)
            path, version = chosen
            info = updater.get_targetinfo(path)
            if info is None:
                raise Refused("invalid metadata", f"{path} is not in the signed targets")
            custom = (info.custom or {}).get(CUSTOM, {})
            try:
                signed_version = Version(str(custom.get("version", "")))
            except InvalidVersion:
                raise Refused("invalid metadata", f"{path} has no version") from None
            if signed_version <= running or signed_version != version:
                raise Refused("rollback", f"{path} is version {signed_version}, not newer")
            file = updater.find_cached_target(info) or updater.download_target(info)
        finally:
            fetcher.client.close()
        digest = info.hashes.get("sha256") or _sha256(Path(file))
        return Status(state=READY, version=str(signed_version), file=file, sha256=digest)

    def _choose(self, metadata_dir: Path) -> tuple[str, Any] | None:
        """The installer to take: (target path, version), or None when nothing is newer.

        Reads the targets metadata ngclient has just verified and stored."""
        from packaging.version import InvalidVersion, Version
        from tuf.api.metadata import Metadata, Targets

        targets = Metadata[Targets].from_file(str(metadata_dir / "targets.json")).signed.targets
        running = Version(self.running_version)
        pin = Version(self.settings.pin) if self.settings.pin else None
        channels = {"stable"} if self.settings.channel == "stable" else {"stable", "beta"}
        suffixes = _suffixes(self.system, from_deb=self.from_deb)
        best: tuple[Any, bool, str] | None = None
        for path, target in targets.items():
            custom = (target.custom or {}).get(CUSTOM, {})
            if custom.get("os") != self.system:
                continue
            try:
                version = Version(str(custom.get("version", "")))
            except InvalidVersion:
                continue
            if pin is not None:
                if version != pin:
                    continue
            elif custom.get("channel") not in channels:
                continue
            if version <= running:  # never a downgrade, nor the same version again
                continue
            candidate = (version, path.endswith(suffixes), path)
            if best is None or candidate > best:
                best = candidate
        return None if best is None else (best[2], best[0])

    def _remove_downloads(self, keep: str) -> None:
        """Installers of earlier checks (a newer one came, or one was refused) go."""
        for path in (self.folder / "downloads").glob("*"):
            if str(path) != keep:
                try:
                    path.unlink()
                except OSError as exc:
                    log.warning("could not remove the old download %s: %s", path, exc)

    # --- in the background ---------------------------------------------------------------------

    def start_background(self, quiet: Callable[[], bool], *, poll: float = 60.0) -> bool:
        """Check when due and quiet, in a daemon thread; False (no thread) when no request may
        ever be made with these settings."""
        reason = self._no_request_reason()
        if reason is not None:
            log.info("update check: %s", reason.line())
            return False
        self.thread = threading.Thread(
            target=self._loop, args=(quiet, poll), name="update-check", daemon=True
        )
        self.thread.start()
        return True

    def _loop(self, quiet: Callable[[], bool], poll: float) -> None:
        while not self.cancelled.wait(poll):
            try:
                if self.due() and quiet():
                    self.run()
                    self.finished.set()
            except Exception:
                log.exception("update check failed")

    def stop(self) -> None:
        """At exit: a running check stops at its next chunk (or read timeout); not waited for."""
        self.cancelled.set()

    # --- at exit -------------------------------------------------------------------------------

    def install_at_exit(
        self, command_for: Callable[[Path], list[str] | None] | None = None
    ) -> bool:
        """Hand a verified installer to the OS's installer; True when it was started."""
        status = self.status()
        if status.state != READY:
            return False
        file = Path(status.file)
        if not file.is_file() or _sha256(file) != status.sha256:
            log.warning("update %s: the downloaded file changed; not installed", status.version)
            self._save(Status(state=REFUSED, reason="wrong hash", detail=str(file)))
            return False
        command = (command_for or self.installer_command)(file)
        if command is None:
            log.info(
                "version %s is ready: install it with: %s",
                status.version,
                " ".join(linux_install_command(file)),
            )
            return False
        log.info("handing version %s to the installer: %s", status.version, command)
        try:
            self.installer_process = _start_detached(command)
        except OSError as exc:
            log.error("the installer could not be started: %s", exc)
            return False
        return True

    def installer_command(self, file: Path) -> list[str] | None:
        if self.system == "windows":
            return [str(file), "/S"]  # per machine; started through the UAC prompt
        if self.system == "macos":
            script = f"/usr/sbin/installer -pkg {shlex.quote(str(file))} -target /"
            script = script.replace("\\", "\\\\").replace('"', '\\"')
            return [
                "/usr/bin/osascript",
                "-e",
                f'do shell script "{script}" with administrator privileges',
            ]
        return None  # Linux: the command is shown (linux_install_command)


def linux_install_command(file: Path) -> list[str]:
    if file.name.endswith(".deb"):
        return ["sudo", "apt-get", "install", str(file)]
    return ["sudo", "tar", "-xJf", str(file), "-C", "/opt"]


def _suffixes(system: str, *, from_deb: bool) -> tuple[str, ...]:
    if system == "windows":
        return (".exe",)
    if system == "macos":
        return (".pkg",)
    return (".deb",) if from_deb else (".tar.xz",)


def _start_detached(command: list[str]) -> subprocess.Popen[bytes] | None:
    """Start the installer so that it outlives the app (it replaces the app's files)."""
    if sys.platform.startswith("win") and command[0].endswith(".exe"):
        # The verified installer, through the UAC prompt (it installs per machine).
        start = getattr(os, "startfile")  # noqa: B009 - Windows only
        start(command[0], "runas", " ".join(command[1:]))
        return None
    return subprocess.Popen(  # noqa: S603 - the verified installer, or the OS's own installer tool
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def _failure_text(error: Exception) -> str:
    from tuf.api import exceptions

    if isinstance(error, exceptions.SlowRetrievalError):
        return f"the update server answered too slowly ({error})"
    if isinstance(error, exceptions.DownloadHTTPError):
        return f"the update server answered {error}"
    if isinstance(error, exceptions.DownloadError):
        cause = error.__cause__ or error
        return f"the update server could not be reached ({cause})"
    return f"{type(error).__name__}: {error}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
