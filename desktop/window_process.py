"""The window in a process of its own, next to the launcher's server.

The launcher serves the portal (its build, waitress, the database) in its own process and shows
it in a window run by a second process of the same program (`campus-portal --window-host`, an
internal option). Both start at once: GTK and WebKit come up while the portal is built, each in
its own interpreter, so neither waits for the other's share of one interpreter's lock (the GIL)
and the two cores run both. In one process the window asked for its first page 100-250 ms before
the portal was built; see the README's start-up section for what this changed.

The two talk through the child's standard input and output only, one JSON object per line:

- launcher -> window: `{"open": {...}}` (the one-time launch URL, the title, the window-state
  file, whether the tests' page reports are on), `{"focus": true}` (a second start asked for
  the window), `{"close": true}` (SIGTERM or SIGINT reached the launcher);
- window -> launcher: `{"log": [level, logger, text]}` (the window's log records, which the
  launcher writes to its log file), `{"problem": text}` (no window can be opened here: the
  launcher serves headless instead), `{"closed": true}` (the user closed the window).

The launch URL carries the launch token, so it goes through the pipe, never on the command
line or in the environment, which other OS users (or other programs) may read. Each side
watches the other: when the window process ends, however it ends, the launcher stops the
server and exits; when the launcher ends (even killed), the window's standard input reaches
its end and the window closes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("desktop.window")

# The internal option that makes the program the window's process (first argument only).
WINDOW_HOST_OPTION = "--window-host"


def window_host_command() -> list[str]:
    """The command of the window's process: this program again, with the internal option.
    A PyInstaller bundle is one executable (sys.frozen); from source it is `python -m desktop`."""
    if getattr(sys, "frozen", False):
        return [sys.executable, WINDOW_HOST_OPTION]
    return [sys.executable, "-m", "desktop", WINDOW_HOST_OPTION]


class WindowProcess:
    """The launcher's side: starts the window's process, opens the portal in it, waits."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        # Re-entrant: a signal handler (SIGTERM: close) may send while its thread is sending.
        self._send_lock = threading.RLock()
        self.problem: str | None = None  # why no window could be opened, if it could not
        self.closed_by_user = False
        self._ended = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        """Start the process now (it loads GTK and WebKit while the launcher goes on)."""
        # The command is this program's own executable with fixed arguments.
        self._process = subprocess.Popen(  # noqa: S603
            window_host_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # stderr is the launcher's: GTK's own warnings reach the terminal as before
            close_fds=True,
        )
        self._reader = threading.Thread(target=self._read, name="window-events", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def open(self, url: str, *, title: str, state_file: Path, report_pages: bool) -> None:
        """Show the portal at `url` (the one-time launch URL) in the window."""
        self._send(
            {
                "open": {
                    "url": url,
                    "title": title,
                    "state_file": str(state_file),
                    "report_pages": report_pages,
                }
            }
        )

    def focus(self) -> bool:
        """Bring the window to the front (a second start asked for it)."""
        return self._send({"focus": True})

    def close(self) -> None:
        """Ask the window to close (from any thread); wait() then returns."""
        self._send({"close": True})

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the window's process has ended; False if it had not within `timeout`."""
        if not self._ended.wait(timeout):
            return False
        if self._process is not None:
            self._process.wait()
        return True

    def kill(self) -> None:
        """The last resort at shutdown: a window process that did not close when asked."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process is not None else None

    def _send(self, message: dict[str, Any]) -> bool:
        process = self._process
        if process is None or process.stdin is None or self._ended.is_set():
            return False
        line = (json.dumps(message) + "\n").encode()
        with self._send_lock:
            try:
                process.stdin.write(line)
                process.stdin.flush()
            except (OSError, ValueError):  # the process has ended (or is ending)
                return False
        return True

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        try:
            for raw in self._process.stdout:
                self._handle(raw)
        finally:
            self._ended.set()
            if self._process.stdin is not None:
                with contextlib.suppress(OSError):
                    self._process.stdin.close()

    def _handle(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("unexpected output from the window's process: %r", raw[:200])
            return
        if not isinstance(message, dict):
            return
        if "log" in message:
            level, name, text = message["log"]
            logging.getLogger(str(name)).log(int(level), "%s", text)
        elif "problem" in message:
            self.problem = str(message["problem"])
        elif message.get("closed"):
            self.closed_by_user = True


# --- the window's process -------------------------------------------------------------------


class _ForwardHandler(logging.Handler):
    """Hands every log record to the launcher (which writes the log file) through the pipe."""

    def __init__(self, send: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(logging.INFO)
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self._send({"log": [record.levelno, record.name, text]})
        except Exception:  # logging must never break the window
            self.handleError(record)


def run_window_host() -> int:
    """The window's process (`campus-portal --window-host`); see the module docstring."""
    if os.name == "posix":  # as desktop.paths.keep_private (not imported: it loads the portal's
        os.umask(0o077)  # settings): the window-state file is the OS user's alone
    # The protocol owns the original stdout; anything else printed (GTK, a library) goes to
    # stderr, so that it can never be taken for a message.
    channel: IO[str] = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    try:
        os.dup2(2, 1)
    except OSError:  # no stderr (a windowed program on Windows): stray output is dropped
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    send_lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        with send_lock:
            try:
                channel.write(json.dumps(message) + "\n")
                channel.flush()
            except (OSError, ValueError):  # the launcher has gone; the window closes anyway
                pass

    root = logging.getLogger()
    root.handlers[:] = [_ForwardHandler(send)]
    root.setLevel(logging.INFO)
    # Ctrl+C in a terminal reaches both processes: the launcher closes the window itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    from desktop.window import DesktopWindow, display_problem

    problem = display_problem()  # loads GTK and WebKit (most of this process's start)
    if problem is not None:
        send({"problem": problem})
        return 0
    # (JSON is ASCII: any encoding reads it; a windowed Windows program may lack sys.stdin)
    incoming: IO[str] = sys.stdin or open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    request = _read_message(incoming)
    if request is None or "open" not in request:  # the launcher ended before asking
        return 0
    opening = request["open"]
    window = DesktopWindow(
        str(opening["url"]),
        title=str(opening["title"]),
        state_file=Path(opening["state_file"]),
        report_pages=bool(opening.get("report_pages")),
    )
    # A signal handler must not wait for the window (its close waits until it is shown).
    signal.signal(
        signal.SIGTERM,
        lambda *_: threading.Thread(target=window.close, name="close", daemon=True).start(),
    )
    threading.Thread(
        target=_follow_launcher, args=(window, incoming), name="launcher-requests", daemon=True
    ).start()
    try:
        window.run()
    except Exception as exc:
        log.exception("the window could not be opened")
        send({"problem": f"the window could not be opened ({exc})"})
        return 0
    send({"closed": True})
    channel.close()  # the launcher may go on at once
    exit_past_stuck_window_threads(0)
    return 0


def exit_past_stuck_window_threads(code: int, *, grace: float = 0.5) -> None:
    """End the window's process even if a window helper thread is stuck once it is closed.

    pywebview runs JS API calls in threads of its own that hand the result back through the
    GUI loop and wait for it; a call in flight when the window closes waits forever (a known
    pywebview limitation), and Python's exit would wait for that thread for ever. By now the
    window is closed, its size saved and the launcher told: nothing is lost by leaving without
    waiting for such a thread."""
    current = threading.current_thread()
    waiting = [
        thread
        for thread in threading.enumerate()
        if thread is not current and not thread.daemon and thread.is_alive()
    ]
    deadline = time.monotonic() + grace
    for thread in waiting:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [thread.name for thread in waiting if thread.is_alive()]
    if not stuck:
        return
    log.warning("leaving without waiting for stuck window thread(s): %s", ", ".join(stuck))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _read_message(stream: IO[str]) -> dict[str, Any] | None:
    """The launcher's next message; None at the end of the input (the launcher has ended)."""
    while True:
        line = stream.readline()
        if not line:
            return None
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict):
            return message


def _follow_launcher(window: Any, incoming: IO[str]) -> None:
    """Focus and close requests; the end of the input (the launcher ended) closes the window."""
    while True:
        message = _read_message(incoming)
        if message is None or message.get("close"):
            window.close()
            return
        if message.get("focus"):
            window.focus()
