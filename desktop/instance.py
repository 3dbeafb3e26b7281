"""One launcher per OS user and data directory: an OS file lock, and a way to reach the first.

The lock is held on `<data dir>/campus-portal.lock` with fcntl.flock (POSIX) or msvcrt.locking
(Windows) for the whole life of the process; the OS drops it when the process ends, however it
ends (even SIGKILL), so a stale lock never blocks a start. Two servers therefore never open the
same database.

A running launcher writes `<data dir>/campus-portal.instance` (readable by its owner only) with
its pid, port, whether it has a window, and a control key. A second start reads it and, when the
first has a window, asks it to come to the front (POST /.campus-portal/focus with the key).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from desktop.guard import CONTROL_HEADER, CONTROL_PATH, HOST, LAUNCH_URL_PATH

log = logging.getLogger(__name__)


class InstanceLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process holds it."""
        handle = open(self.path, "a+b")  # noqa: SIM115 - held open for the process's life
        try:
            if sys.platform == "win32":
                import msvcrt

                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is None:
            return
        with contextlib.suppress(OSError):
            if sys.platform == "win32":
                import msvcrt

                self._handle.seek(0)
                msvcrt.locking(self._handle.fileno(), msvcrt.LK_UNLCK, 1)
            else:
                import fcntl

                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    def __enter__(self) -> InstanceLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True)
class InstanceInfo:
    pid: int
    port: int
    window: bool
    control_key: str

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"


def write_info(path: Path, info: InstanceInfo) -> None:
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(info), handle)
    os.replace(partial, path)


def read_info(path: Path) -> InstanceInfo | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return InstanceInfo(
            pid=int(data["pid"]),
            port=int(data["port"]),
            window=bool(data["window"]),
            control_key=str(data["control_key"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_info(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _ask(info: InstanceInfo, path: str, timeout: float) -> tuple[int, bytes] | None:
    """POST `path` to the running launcher, with its control key: its answer's status and
    body, or None when it cannot be reached."""
    connection = http.client.HTTPConnection(HOST, info.port, timeout=timeout)
    try:
        connection.request(
            "POST",
            path,
            headers={"Host": f"{HOST}:{info.port}", CONTROL_HEADER: info.control_key},
        )
        response = connection.getresponse()
        return response.status, response.read()
    except OSError as exc:
        log.warning("could not reach the running launcher on port %s: %s", info.port, exc)
        return None
    finally:
        connection.close()


def ask_to_focus(info: InstanceInfo, *, timeout: float = 5.0) -> bool:
    """Ask the running launcher to bring its window to the front; True if it did."""
    return _ask(info, CONTROL_PATH, timeout) == (200, b"focused")


def ask_for_launch_url(info: InstanceInfo, *, timeout: float = 5.0) -> str | None:
    """A fresh one-time launch URL from the running launcher, or None if it cannot be had."""
    answer = _ask(info, LAUNCH_URL_PATH, timeout)
    if answer is None:
        return None
    status, body = answer[0], answer[1].decode("ascii", "replace")
    return body if status == 200 and body.startswith(f"http://{HOST}:") else None
