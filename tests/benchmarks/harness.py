"""The pieces benchmarks are built from: a portal with demo data, served by waitress (or, as the
central server runs, by gunicorn in a process of its own); an HTTP client that logs in like a
browser; an SQL statement counter; latency percentiles.

Benchmark modules normally reach these through the `BenchContext` the runner hands them
(tests/benchmarks/run.py); the query-count test uses `QueryCounter` and `Page` directly.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import re
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from portal import create_app
from portal.demo.services import DEMO_PASSWORD, generate
from portal.extensions import db as _db

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
SESSION_COOKIE = re.compile(r"(portal_session=[^;]*)")


# --- Pages -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """A page to measure: who opens it, and its path (computed from the data, e.g. an id)."""

    name: str
    username: str
    path: Callable[[Session], str]


# --- Counting SQL statements --------------------------------------------------------------------


class QueryCounter:
    """Counts statements sent to the database by an engine (every cursor execute).

    Requests are measured one at a time, so a single counter is enough; `counting()` gives
    the number of statements issued inside its block.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.count = 0
        self.seconds = 0.0  # time spent waiting for the database, summed over statements
        self.statements: list[str] = []
        self.keep_statements = False
        self._lock = threading.Lock()

    def _on_execute(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        with self._lock:
            self.count += 1
            if self.keep_statements:
                self.statements.append(statement)
        conn.info["query_started"] = time.perf_counter()

    def _on_executed(self, conn: Any, *_args: Any) -> None:
        started = conn.info.pop("query_started", None)
        if started is not None:
            with self._lock:
                self.seconds += time.perf_counter() - started

    def __enter__(self) -> QueryCounter:
        event.listen(self.engine, "before_cursor_execute", self._on_execute)
        event.listen(self.engine, "after_cursor_execute", self._on_executed)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on_execute)
        event.remove(self.engine, "after_cursor_execute", self._on_executed)

    @contextmanager
    def counting(self, keep_statements: bool = False) -> Iterator[list[int]]:
        """with counter.counting() as result: ...  then result[0] is the number of statements."""
        with self._lock:
            self.count = 0
            self.seconds = 0.0
            self.statements = []
            self.keep_statements = keep_statements
        result = [0]
        try:
            yield result
        finally:
            with self._lock:
                result[0] = self.count


# --- Latency ----------------------------------------------------------------------------------


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank percentile (fraction 0.5 = median, 0.95 = p95)."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Measurement:
    """Latency of one page in milliseconds, and the SQL statements one request issues."""

    samples_ms: list[float]
    queries: int
    queries_min: int
    queries_max: int
    sql_ms: list[float] = field(default_factory=list)  # per request: time inside the database

    @property
    def p50(self) -> float:
        return percentile(self.samples_ms, 0.50)

    @property
    def p95(self) -> float:
        return percentile(self.samples_ms, 0.95)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples_ms)

    @property
    def sql_p50(self) -> float:
        return percentile(self.sql_ms, 0.50)


# --- HTTP -------------------------------------------------------------------------------------


class HttpSession:
    """One user's keep-alive connection to the portal, holding its session cookie."""

    def __init__(self, base_url: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.cookie = ""
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, str, dict[str, str]]:
        headers = {"Accept": "text/html", "Host": f"{self.host}:{self.port}"}
        body = None
        if self.cookie:
            headers["Cookie"] = self.cookie
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        except (http.client.HTTPException, OSError):  # the server closed a kept-alive socket
            self.connection.close()
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        for value in response.headers.get_all("Set-Cookie") or []:
            if match := SESSION_COOKIE.match(value):
                self.cookie = match.group(1)
        return response.status, text, dict(response.headers)

    def get(self, path: str) -> tuple[int, str]:
        status, text, _ = self.request("GET", path)
        return status, text

    def login(self, username: str, password: str = DEMO_PASSWORD) -> None:
        status, page = self.get("/login")
        match = CSRF_META.search(page)
        if status != 200 or not match:
            raise RuntimeError(f"no log-in form at /login (status {status})")
        status, text, headers = self.request(
            "POST",
            "/login",
            {"csrf_token": match.group(1), "username": username, "password": password},
        )
        if status != 302:
            raise RuntimeError(f"log-in as {username!r} failed with status {status}")

    def close(self) -> None:
        self.connection.close()


# --- A served portal --------------------------------------------------------------------------


def _wait_until_healthy(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, _ = HttpSession(url).get("/healthz")
            if status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the portal at {url} did not become healthy")
        time.sleep(0.05)  # polling interval while waitress starts


@contextmanager
def _read_session(app: Flask) -> Iterator[Session]:
    """A session on `app`'s database for looking things up; whatever it did is rolled back."""
    with app.app_context():
        try:
            yield _db.session
        finally:
            _db.session.rollback()
            _db.session.remove()


@dataclass
class ServedPortal:
    """A portal on one database with one demo data set, served by waitress in a thread."""

    database: str  # "sqlite" or "postgresql"
    size: str  # demo data size
    app: Flask
    url: str
    build_seconds: float
    _server: Any = field(repr=False, default=None)
    _thread: threading.Thread | None = field(repr=False, default=None)
    _counter: QueryCounter | None = field(repr=False, default=None)

    def session(self) -> AbstractContextManager[Session]:
        """A database session on the portal's database (read-only use: nothing is committed)."""
        return _read_session(self.app)

    def client(self, username: str) -> HttpSession:
        client = HttpSession(self.url)
        client.login(username)
        return client

    @property
    def counter(self) -> QueryCounter:
        assert self._counter is not None
        return self._counter

    def measure(
        self, client: HttpSession, path: str, requests: int, warmup: int = 5
    ) -> Measurement:
        """GET `path` `requests` times, one after another; every answer must be 200."""
        for _ in range(warmup):
            status, _ = client.get(path)
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status} on {self.database}/{self.size}")
        samples: list[float] = []
        counts: list[int] = []
        sql: list[float] = []
        for _ in range(requests):
            with self.counter.counting() as counted:
                started = time.perf_counter()
                status, _ = client.get(path)
                samples.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status} on {self.database}/{self.size}")
            counts.append(counted[0])
            sql.append(self.counter.seconds * 1000)
        return Measurement(
            samples_ms=samples,
            queries=statistics.mode(counts),
            queries_min=min(counts),
            queries_max=max(counts),
            sql_ms=sql,
        )

    def stop(self) -> None:
        logging.getLogger("waitress").setLevel(logging.CRITICAL)
        if self._server is not None:
            while self._server._map:
                for channel in list(self._server._map.values()):
                    channel.handle_close()
            self._server.task_dispatcher.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
        with self.app.app_context():
            _db.session.remove()
            _db.engine.dispose()


def build_portal(
    database_url: str, size: str, data_dir: Path | None = None, **overrides: Any
) -> tuple[Flask, float]:
    """A portal on `database_url` (empty), migrated and filled with demo data; and the seconds
    the demo data took."""
    from flask_migrate import upgrade

    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="portal-bench-"))
    config: dict[str, Any] = {
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "benchmark-secret-key-" + uuid.uuid4().hex,
        "LOGIN_RATE_LIMIT": "100000 per minute",
        "LOG_LEVEL": "WARNING",
        **overrides,
    }
    app = create_app(config)
    logging.getLogger("portal.requests").setLevel(logging.WARNING)
    with app.app_context():
        upgrade()
        started = time.perf_counter()
        generate(_db.session, size, upload_dir=Path(app.config["PORTAL"]["UPLOAD_DIR"]))
        _db.session.commit()
        seconds = time.perf_counter() - started
        _db.session.remove()
        if _db.engine.dialect.name == "postgresql":
            # A freshly bulk-loaded database has no planner statistics or visibility map yet;
            # a server in use has both (autovacuum), so measure that state.
            with _db.engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "VACUUM ANALYZE"
                )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return app, seconds


def serve_portal(
    app: Flask, database: str, size: str, build_seconds: float, threads: int = 4
) -> ServedPortal:
    from waitress.server import create_server

    server: Any = create_server(app, host="127.0.0.1", port=0, threads=threads)
    url = f"http://127.0.0.1:{server.effective_port}"
    thread = threading.Thread(target=server.run, name=f"waitress-{database}-{size}", daemon=True)
    thread.start()
    _wait_until_healthy(url)
    with app.app_context():
        counter = QueryCounter(_db.engine).__enter__()
    return ServedPortal(
        database=database,
        size=size,
        app=app,
        url=url,
        build_seconds=build_seconds,
        _server=server,
        _thread=thread,
        _counter=counter,
    )


@dataclass
class ServerProcess:
    """The central server as deployed: `campus-portal-server serve` (gunicorn, gthread workers,
    installers/server/gunicorn.conf.py) in a process of its own, on the database of `app`;
    `app` stays for setting up data in this process."""

    app: Flask
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def session(self) -> AbstractContextManager[Session]:
        return _read_session(self.app)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)  # gunicorn stops gracefully
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        with self.app.app_context():
            _db.session.remove()
            _db.engine.dispose()


def serve_portal_process(
    app: Flask, folder: Path, *, workers: int = 1, extra_env: dict[str, str] | None = None
) -> ServerProcess:
    """Serve `app`'s database and files with gunicorn in a new process (server mode)."""
    from tests.server.cluster import GUNICORN_CONF, ROOT, free_port, server_command, wait_for

    settings = app.config["PORTAL"]
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        PORTAL_MODE="server",
        PORTAL_DATABASE_URL=str(settings["DATABASE_URL"]),
        PORTAL_SECRET_KEY=str(app.config["SECRET_KEY"]),
        PORTAL_DATA_DIR=str(settings["DATA_DIR"]),
        PORTAL_UPLOAD_DIR=str(settings["UPLOAD_DIR"]),
        PORTAL_RATELIMIT_STORAGE_URI="memory://",
        PORTAL_LOGIN_RATE_LIMIT="100000 per minute",
        PORTAL_LOG_LEVEL="WARNING",
        PORTAL_TRUSTED_PROXIES="0",
        PROMETHEUS_MULTIPROC_DIR=str(folder / "metrics"),
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        **(extra_env or {}),
    )
    port = free_port()
    log = folder / "gunicorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            server_command(
                "serve",
                "--config",
                str(GUNICORN_CONF),
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
            ),
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/healthz", process, log)
    except BaseException:
        ServerProcess(app, url, process, log).stop()
        raise
    return ServerProcess(app, url, process, log)
