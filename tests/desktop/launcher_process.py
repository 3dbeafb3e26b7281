"""Run the real launcher in a subprocess and talk to it over HTTP, like its window would.

Shared by tests/desktop and tests/benchmarks/bench_desktop.py.
"""

from __future__ import annotations

import http.client
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from desktop.window import PAGE_REPORTS_SWITCH

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = re.compile(r"^Campus Portal running at (http://127\.0\.0\.1:(\d+)(/launch/\S+))$")
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def launcher_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "desktop", *args]


def launcher_env(**extra: str) -> dict[str, str]:
    """The environment of a launcher under test: no display unless given, and the window's
    test switch on, so that each page it shows is logged as "page loaded {...}"."""
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env["PYTHONUNBUFFERED"] = "1"
    env[PAGE_REPORTS_SWITCH] = "1"
    env.update(extra)
    return env


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def location(self) -> str:
        return self.headers.get("location", "")


@dataclass
class PortalClient:
    """A minimal HTTP client with a cookie jar, for one launcher on 127.0.0.1:port."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        send_cookies: bool = True,
        body: bytes | None = None,
    ) -> Response:
        all_headers = {"Host": f"127.0.0.1:{self.port}", "Accept": "text/html"}
        if send_cookies and self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if form is not None:
            body = urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        all_headers.update(headers or {})
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            connection.request(method, path, body=body, headers=all_headers)
            raw = connection.getresponse()
            data = raw.read()
            response_headers = {k.lower(): v for k, v in raw.getheaders()}
            for value in raw.headers.get_all("Set-Cookie") or []:
                jar: SimpleCookie = SimpleCookie()
                jar.load(value)
                for name, morsel in jar.items():
                    if morsel["max-age"] == "0" or morsel.value == "":
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
            return Response(raw.status, response_headers, data)
        finally:
            connection.close()

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, form: dict[str, str], **kwargs: Any) -> Response:
        return self.request("POST", path, form=form, **kwargs)

    def follow(self, path: str, limit: int = 5) -> Response:
        response = self.get(path)
        for _ in range(limit):
            if response.status not in (301, 302, 303, 307, 308):
                break
            response = self.get(urlsplit(response.location).path or "/")
        return response

    def csrf_token(self, path: str) -> str:
        page = self.follow(path)
        match = CSRF_META.search(page.text)
        assert match, f"no CSRF token on {path}: {page.status} {page.text[:300]}"
        return match.group(1)

    def exchange(self, launch_path: str) -> Response:
        return self.get(launch_path)


class Launcher:
    """`campus-portal --headless ...` in a subprocess; start() waits for its one stdout line."""

    def __init__(
        self,
        data_dir: Path | None,
        *args: str,
        headless: bool = True,
        work_dir: Path | None = None,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
        user: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.work_dir = work_dir or (data_dir.parent if data_dir else Path.cwd())
        self.args = ["--headless"] if headless else []
        if data_dir is not None:
            self.args += ["--data-dir", str(data_dir)]
        self.args += list(args)
        self.env = env or launcher_env()
        self.preexec_fn = preexec_fn
        self.user = user
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.port = 0
        self.launch_path = ""
        self.started_at = 0.0
        self.stdout_lines: list[str] = []
        self.stderr_file: Path | None = None

    def spawn(self) -> subprocess.Popen[bytes]:
        command = launcher_command(*self.args)
        # stderr goes to a file: a pipe nobody reads could fill up and block the launcher.
        self.stderr_file = self.work_dir / f"launcher-stderr-{time.time_ns()}.txt"
        self.started_at = time.time()
        with self.stderr_file.open("wb") as stderr:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                preexec_fn=self.preexec_fn,  # tests only: resource limits
                user=self.user,
            )
        return self.process

    def start(self, timeout: float = 60.0) -> Launcher:
        process = self.spawn()
        line = read_line(process, timeout)
        match = READY_LINE.match(line)
        if not match:
            stderr = self.finish(timeout=10)[1]
            raise AssertionError(f"unexpected first line {line!r}; stderr:\n{stderr}")
        self.stdout_lines.append(line)
        self.url, self.port, self.launch_path = match.group(1), int(match.group(2)), match.group(3)
        return self

    def client(self, *, exchange: bool = True) -> PortalClient:
        client = PortalClient(self.port)
        if exchange:
            response = client.exchange(self.launch_path)
            assert response.status == 303, response
        return client

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> tuple[int, str, str]:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.finish(timeout)

    def kill(self) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.kill()
        self.finish(timeout=30)

    def finish(self, timeout: float = 30.0) -> tuple[int, str, str]:
        assert self.process is not None
        out, _ = self.process.communicate(timeout=timeout)
        rest = out.decode("utf-8", "replace")
        self.stdout_lines += [line for line in rest.splitlines() if line]
        return self.process.returncode, rest, self.stderr()

    def stderr(self) -> str:
        if self.stderr_file is None or not self.stderr_file.exists():
            return ""
        return self.stderr_file.read_text("utf-8", "replace")


def read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The next stdout line of `process`, waiting at most `timeout` seconds (no sleeping)."""
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buffer = b""
    fd = process.stdout.fileno()
    try:
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no line from the launcher within {timeout}s: {buffer!r}")
            if not selector.select(remaining):
                continue
            chunk = os.read(fd, 1)  # byte by byte: never read past the line into the buffer
            if not chunk:
                break
            buffer += chunk
    finally:
        selector.close()
    return buffer.decode("utf-8", "replace").rstrip("\n")


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120.0, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run `campus-portal ARGS` to completion (backup, restore, --version, refused starts)."""
    return subprocess.run(
        launcher_command(*args),
        cwd=ROOT,
        env=env or launcher_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


class Xvfb:
    """A private X server on a free display (Xvfb picks it: -displayfd), for window tests."""

    def __init__(self, width: int = 1280, height: int = 900) -> None:
        self.size = f"{width}x{height}x24"
        self.process: subprocess.Popen[bytes] | None = None
        self.display = ""

    def __enter__(self) -> Xvfb:
        read_end, write_end = os.pipe()
        self.process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_end), "-screen", "0", self.size, "-nolisten", "tcp"],
            pass_fds=(write_end,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write_end)
        with os.fdopen(read_end, "rb") as reader:
            number = reader.readline().strip()  # written once the server accepts clients
        if not number:
            self.process.kill()
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number.decode()}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["import", "-display", self.display, "-window", "root", str(path)],
            check=True,
            timeout=60,
        )
        return path


def wait_for_log(log_file: Path, pattern: str, timeout: float, process: Any = None) -> re.Match:
    """Poll the launcher's log until a line matches `pattern` (or the process ends)."""
    compiled = re.compile(pattern)
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while time.monotonic() < deadline:
        if log_file.exists():
            for line in log_file.read_text("utf-8", "replace").splitlines():
                match = compiled.search(line)
                if match:
                    return match
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the launcher exited ({process.returncode}) before {pattern!r}")
        pause.wait(0.05)
    raise TimeoutError(f"{pattern!r} not logged within {timeout}s")
