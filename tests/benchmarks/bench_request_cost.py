"""Request cost: CPU time the central server's app spends on each request of the load mix.

The load benchmark (bench_load.py, locustfile.py) says whether a number of users is held; this
one says why, and what a request costs: every request of the locust mix (log-in page, log-in,
home, catalogue page and API search, my registrations, my grades page and API, API register and
drop, an instructor's gradebook page and API and a saved mark, the admin dashboard and user list)
is answered by the app as gunicorn runs it (`create_server_app()` in server mode: PostgreSQL,
rate limits in Redis, Prometheus metrics in multiprocess mode, one JSON log line per request on
stderr at level INFO, the proxy headers of nginx), in a process of its own, and
`time.process_time()` is read around each WSGI call. That is the CPU the app process spends
(Flask, SQLAlchemy, the database driver, Redis client, templates, logging), not the wall time:
it hardly depends on what else the machine is doing, so it can be compared between runs.
PostgreSQL's own CPU for the request (its backend process, from /proc) is reported beside it.

From the per-request cost and the locust mix (MIX below: the users' and tasks' weights of
locustfile.py) it works out the app's CPU per user action, and how many cores 5,000 users at
30 s think time need for the app alone.

    make bench BENCH_ARGS="--only request_cost --databases postgresql --sizes small"

builds the demo data on a fresh database, then runs the measuring process; on a database that
already holds demo data, the measuring process alone (add `--profile DIR` for a pyinstrument
profile of each request type, as HTML and text):

    PYTHONPATH=$PWD python -m tests.benchmarks.bench_request_cost \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/portal_bench_reqcost_small \\
        --requests 200 [--profile tests/artifacts/request-cost]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

TITLE = "Request cost: app CPU per request of the load mix (server mode, PostgreSQL, Redis)"
USERS_GOAL = 5000
THINK_SECONDS = 30.0
LOGINS_PER_SECOND = 8.3  # 5,000 log-ins in 10 minutes (bench_load's spawn rate)
CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
GRADEBOOK = re.compile(r"/sections/([0-9a-f-]{36})/gradebook")
WORDS = ["intro", "advanced", "lab", "theory", "systems", "history", "data", "101", "2", "methods"]
PASSWORD = "demo-pass"
# As nginx forwards a request (installers/server/nginx site file).
PROXY_HEADERS = {
    "X-Forwarded-For": "10.0.0.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "portal.campus.example",
    "X-Real-IP": "10.0.0.7",
}

# Requests per user action of the locust mix: (request name, share). Users: students 90,
# instructors 8, admins 2 (locustfile weights); each picks a task by its @task weight. A
# student's register-or-drop alternates between a search plus a register and a drop (counted
# half each). An instructor's API task is a gradebook and a saved mark. Log-ins are apart.
MIX: dict[str, float] = {
    "catalogue page": 0.90 * 4 / 13,
    "API catalogue search": 0.90 * (3 + 0.5) / 13,
    "my registrations page": 0.90 * 3 / 13,
    "my grades page": 0.90 * 1 / 13,
    "API my grades": 0.90 * 1 / 13,
    "API register": 0.90 * 0.5 / 13,
    "API drop": 0.90 * 0.5 / 13,
    "gradebook page": 0.08 * 3 / 5,
    "API gradebook": 0.08 * 2 / 5,
    "API save mark": 0.08 * 2 / 5,
    "admin dashboard": 0.02 * 2 / 3,
    "admin users": 0.02 * 1 / 3,
}
LOGIN_REQUESTS = ("log-in page", "log in", "home")
FLOOR = "API me (floor, not in the mix)"
# The central server's CPU budget per request (app CPU ms unless said otherwise).
GOAL_MIX_APP_MS = 5.0
GOAL_MIX_POSTGRES_MS = 2.0
GOAL_EACH_REQUEST_MS = 10.0
GOAL_FLOOR_MS = 1.5
GOAL_LOGIN_MS = 35.0


# --- The measuring process ----------------------------------------------------------------------


class CpuMeter:
    """WSGI middleware around the whole app: CPU seconds of the requests since `seconds` was
    last set to 0 (a request and the redirect it was answered with), each body read."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.seconds = 0.0
        self.profiler: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if self.profiler is not None:
            self.profiler.start()
        started = time.process_time()
        answer = self.app(environ, start_response)
        try:
            body = list(answer)
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()
        self.seconds += time.process_time() - started
        if self.profiler is not None:
            self.profiler.stop()
        return body


class PostgresCpu:
    """CPU seconds PostgreSQL's backends of the app's connections have used (/proc, same host)."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.pids: set[int] = set()
        self.tick = os.sysconf("SC_CLK_TCK")
        event.listen(engine, "connect", self._connected)
        engine.dispose()

    def _connected(self, connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        self.pids.add(int(cursor.fetchone()[0]))
        cursor.close()

    def seconds(self) -> float:
        total = 0
        for pid in self.pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / self.tick


class Meter:
    """Drives the app with werkzeug's test client and keeps CPU samples per request name."""

    def __init__(self, app: Any, profile_dir: Path | None) -> None:
        from werkzeug.test import Client

        from portal.extensions import db
        from tests.benchmarks.harness import QueryCounter

        self.app = app
        self.meter = CpuMeter(app.wsgi_app)
        app.wsgi_app = self.meter
        with app.app_context():
            self.engine = db.engine
        self.postgres = PostgresCpu(self.engine)
        self.counter = QueryCounter(self.engine).__enter__()
        self.client_class = Client
        self.samples: dict[str, list[float]] = {}
        self.postgres_seconds: dict[str, float] = {}
        self.queries: dict[str, int] = {}
        self.profile_dir = profile_dir
        self.profilers: dict[str, Any] = {}
        self.measuring = False

    def client(self) -> Any:
        return self.client_class(self.app)

    def request(
        self, client: Any, name: str, method: str, path: str, expect: Iterable[int], **kwargs: Any
    ) -> Any:
        headers = {**PROXY_HEADERS, "Accept": "text/html", **kwargs.pop("headers", {})}
        profiler = None
        if self.measuring and self.profile_dir is not None:
            from pyinstrument import Profiler

            profiler = self.profilers.setdefault(name, Profiler(interval=0.0002))
        self.meter.profiler = profiler
        postgres_before = self.postgres.seconds()
        self.meter.seconds = 0.0
        with self.counter.counting() as counted:
            answer = client.open(path, method=method, headers=headers, **kwargs)
        self.meter.profiler = None
        if answer.status_code not in expect:
            raise RuntimeError(f"{method} {path} ({name}) answered {answer.status_code}")
        if self.measuring:
            self.samples.setdefault(name, []).append(self.meter.seconds * 1000)
            self.postgres_seconds[name] = self.postgres_seconds.get(name, 0.0) + (
                self.postgres.seconds() - postgres_before
            )
            self.queries[name] = counted[0]
        return answer

    def log_in(self, username: str) -> tuple[Any, str]:
        client = self.client()
        page = self.request(client, "log-in page", "GET", "/login", (200,))
        token = CSRF.search(page.get_data(as_text=True))
        assert token, "no CSRF token on the log-in page"
        form = {"csrf_token": token.group(1), "username": username, "password": PASSWORD}
        referer = {"Referer": "https://portal.campus.example/login"}
        self.request(client, "log in", "POST", "/login", (302,), data=form, headers=referer)
        home = self.request(client, "home", "GET", "/", (200,), follow_redirects=True)
        token = CSRF.search(home.get_data(as_text=True))
        assert token, "no CSRF token on the home page"
        return client, token.group(1)

    def results(self) -> list[dict[str, Any]]:
        rows = []
        for name, samples in self.samples.items():
            rows.append(
                {
                    "request": name,
                    "n": len(samples),
                    "cpu_mean_ms": statistics.fmean(samples),
                    "cpu_p50_ms": statistics.median(samples),
                    "postgres_ms": self.postgres_seconds.get(name, 0.0) * 1000 / len(samples),
                    "queries": self.queries.get(name, 0),
                }
            )
        return rows

    def write_profiles(self) -> None:
        if self.profile_dir is None:
            return
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        for name, profiler in self.profilers.items():
            stem = self.profile_dir / re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
            stem.with_suffix(".txt").write_text(
                profiler.output_text(unicode=False, color=False, show_all=False)
            )
            stem.with_suffix(".html").write_text(profiler.output_html())


def _cycle(items: list[str]) -> Iterator[str]:
    while True:
        yield from items


def _open_section(meter: Meter, client: Any, csrf: str, term: str) -> str:
    """A section of `term` the client's student can register for (and drops it again), found as
    the locust task finds one; "" when none. Introductory courses first: most others have
    prerequisites a demo student lacks."""
    write = {"X-CSRFToken": csrf, "Referer": "https://portal.campus.example/"}
    for word in ["101", "100", *WORDS]:
        found = meter.request(
            client, "API catalogue search", "GET",
            f"/api/v1/courses?q={word}&term={term}&per_page=50", (200,),
        ).get_json()  # fmt: skip
        for course in found["items"]:
            for candidate in course["sections"]:
                answer = meter.request(
                    client, "API register", "POST", "/api/v1/me/registrations",
                    (201, 409, 422), json={"section_id": candidate["id"]}, headers=write,
                )  # fmt: skip
                if answer.status_code == 201:
                    meter.request(
                        client, "API drop", "DELETE",
                        f"/api/v1/me/registrations/{answer.get_json()['id']}", (200, 204),
                        headers=write,
                    )  # fmt: skip
                    return str(candidate["id"])
    return ""


def _actions(meter: Meter, term: str) -> list[tuple[str, Callable[[], object]]]:
    """One closure per request type of the mix, each making that request once."""
    # The first demo student with room for one more section of the term (many are full).
    for number in range(1, 31):
        student, student_csrf = meter.log_in(f"student{number:05d}")
        section = _open_section(meter, student, student_csrf, term)
        if section:
            break
    assert section, "no demo student could register for a section"
    instructor, instructor_csrf = meter.log_in("instructor0001")
    admin, _ = meter.log_in("admin")
    words = _cycle(WORDS)
    write = {"Referer": "https://portal.campus.example/"}

    def get(client: Any, name: str, path: str) -> Callable[[], object]:
        return lambda: meter.request(client, name, "GET", path, (200,))

    registration: list[str] = []

    def register() -> None:
        answer = meter.request(
            student, "API register", "POST", "/api/v1/me/registrations", (201,),
            json={"section_id": section}, headers={"X-CSRFToken": student_csrf, **write},
        )  # fmt: skip
        registration.append(answer.get_json()["id"])

    def drop() -> None:
        meter.request(
            student, "API drop", "DELETE", f"/api/v1/me/registrations/{registration.pop()}",
            (200, 204), headers={"X-CSRFToken": student_csrf, **write},
        )  # fmt: skip

    home = meter.request(instructor, "home", "GET", "/", (200,)).get_data(as_text=True)
    sections = sorted(set(GRADEBOOK.findall(home)))
    assert sections, "the instructor teaches no section"
    book = meter.request(
        instructor, "API gradebook", "GET", f"/api/v1/sections/{sections[0]}/gradebook", (200,)
    ).get_json()
    assessment = book["assessments"][0]
    student_id = book["rows"][0]["student"]["id"]
    points = _cycle(["3.5", "7", "12.5"])

    def save_mark() -> None:
        meter.request(
            instructor, "API save mark", "PUT",
            f"/api/v1/assessments/{assessment['id']}/marks/{student_id}", (200,),
            json={"points": float(next(points))},
            headers={"X-CSRFToken": instructor_csrf, **write},
        )  # fmt: skip

    def catalogue_page() -> object:
        return meter.request(
            student, "catalogue page", "GET", f"/courses?q={next(words)}&term={term}", (200,)
        )

    def catalogue_api() -> object:
        return meter.request(
            student, "API catalogue search", "GET",
            f"/api/v1/courses?q={next(words)}&term={term}&per_page=10", (200,),
        )  # fmt: skip

    return [
        ("log-in", lambda: meter.log_in("student00002")),
        ("catalogue page", catalogue_page),
        ("API catalogue search", catalogue_api),
        ("my registrations page", get(student, "my registrations page", "/registrations")),
        ("my grades page", get(student, "my grades page", "/grades")),
        ("API my grades", get(student, "API my grades", "/api/v1/me/grades")),
        ("API register", register),
        ("API drop", drop),
        ("gradebook page", get(instructor, "gradebook page", f"/sections/{sections[0]}/gradebook")),
        (
            "API gradebook",
            get(instructor, "API gradebook", f"/api/v1/sections/{sections[0]}/gradebook"),
        ),
        ("API save mark", save_mark),
        ("admin dashboard", get(admin, "admin dashboard", "/admin/")),
        ("admin users", get(admin, "admin users", "/admin/users/?q=stu")),
        # Not in the mix: the least a signed-in API call costs (user, rate limit, metrics, log).
        (FLOOR, get(student, FLOOR, "/api/v1/me")),
    ]


def measure(database_url: str, term: str, requests: int, profile_dir: Path | None) -> dict:
    """In a process of its own (the settings are read from the environment, as gunicorn's
    workers do): the app's CPU per request, each request type `requests` times, interleaved."""
    folder = Path(tempfile.mkdtemp(prefix="portal-request-cost-"))
    metrics_dir = folder / "metrics"
    metrics_dir.mkdir()
    os.environ.update(
        PORTAL_MODE="server",
        PORTAL_DATABASE_URL=database_url,
        PORTAL_SECRET_KEY="request-cost-benchmark-secret-key-0123456789",
        PORTAL_RATELIMIT_STORAGE_URI=os.environ.get(
            "PORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"
        ),
        PORTAL_LOGIN_RATE_LIMIT="1000000 per minute",
        PORTAL_API_RATE_LIMIT="1000000 per minute",  # one student calls far more than a person
        PORTAL_SHARED_DIR=str(folder / "shared"),
        PORTAL_LOG_LEVEL="INFO",  # as installers/server/server.env.example
        PORTAL_TRUSTED_PROXIES="1",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    os.environ.setdefault("PORTAL_MACHINE_CONFIG", "/nonexistent/campus-portal-machine.toml")
    os.environ.setdefault("PORTAL_USER_CONFIG", "/nonexistent/campus-portal-user.toml")
    assert "prometheus_client" not in sys.modules, "imported before its multiprocess setting"
    from portal.wsgi import create_server_app

    app = create_server_app()
    meter = Meter(app, profile_dir)
    actions = _actions(meter, term)
    for _ in range(3):  # warm up: templates compiled, connections open, caches filled
        for _name, action in actions:
            action()
    meter.measuring = True
    for _ in range(requests):
        for _name, action in actions:
            action()
    meter.measuring = False
    meter.write_profiles()
    return {"rows": meter.results()}


# --- The benchmark ------------------------------------------------------------------------------


def weighted(rows: dict[str, dict[str, Any]], column: str) -> float:
    """The mix's average of `column` per request (MIX weights; log-ins apart)."""
    total = sum(MIX.values())
    return sum(share * rows[name][column] for name, share in MIX.items()) / total


def capacity(rows: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The app's CPU for 5,000 users thinking 30 s: requests per second from MIX, log-ins at
    bench_load's arrival rate (a log-in is its page, the POST and the home page)."""
    per_action = sum(MIX.values())  # requests per user action
    requests_per_second = USERS_GOAL / THINK_SECONDS * per_action
    request_ms = weighted(rows, "cpu_mean_ms")
    login_ms = sum(rows[name]["cpu_mean_ms"] for name in LOGIN_REQUESTS)
    steady = requests_per_second * request_ms / 1000
    storm = steady + LOGINS_PER_SECOND * login_ms / 1000
    return {
        "requests_per_second": requests_per_second,
        "request_ms": request_ms,
        "login_ms": login_ms,
        "cores_steady": steady,
        "cores_with_logins": storm,
        "users_per_core": USERS_GOAL / steady,
    }


def goal_checks(rows: dict[str, dict[str, Any]]) -> list[tuple[str, float, float]]:
    """Each goal of the CPU budget: (what, the figure in ms, the goal in ms)."""
    figures = capacity(rows)
    slowest = max(MIX, key=lambda name: rows[name]["cpu_mean_ms"])
    checks = [
        ("the mix's app CPU per request", figures["request_ms"], GOAL_MIX_APP_MS),
        (
            "the mix's PostgreSQL CPU per request",
            weighted(rows, "postgres_ms"),
            GOAL_MIX_POSTGRES_MS,
        ),
        (
            f"every request type of the mix (the costliest: {slowest})",
            rows[slowest]["cpu_mean_ms"],
            GOAL_EACH_REQUEST_MS,
        ),
        (
            "a signed-in API call that does nothing (API me)",
            rows[FLOOR]["cpu_mean_ms"],
            GOAL_FLOOR_MS,
        ),
        ("a log-in (its page, the POST, the home page)", figures["login_ms"], GOAL_LOGIN_MS),
    ]
    return checks


def goals(rows: dict[str, dict[str, Any]]) -> list[str]:
    """One line per goal of the CPU budget: the figure, the goal, and met or NOT MET."""
    return [
        f"Goal: {label} ≤ {goal:g} ms: {value:.1f} ms, {'met' if value <= goal else 'NOT MET'}."
        for label, value, goal in goal_checks(rows)
    ]


def run(context: Any) -> list[dict[str, Any]]:
    from portal.extensions import db
    from tests.benchmarks.harness import build_portal

    if "postgresql" not in context.databases:
        context.note("PostgreSQL only (the central server's database); not in --databases.")
        return []
    size = context.sizes[0]
    url = context._fresh_postgres_database(f"portal_bench_reqcost_{size}")
    folder = Path(tempfile.mkdtemp(prefix="portal-bench-reqcost-"))
    context._temp_dirs.append(folder)
    print(f"… building {size} demo data for the request cost", file=sys.stderr, flush=True)
    app, _seconds = build_portal(url, size, folder / "build")
    with app.app_context():
        term = prepare(db.session)
        db.session.remove()
        db.engine.dispose()
    requests = min(context.requests, 200)
    command = [
        sys.executable, "-m", "tests.benchmarks.bench_request_cost",
        "--database-url", url, "--term", term, "--requests", str(requests),
    ]  # fmt: skip
    log = context.artifacts / "request-cost-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as stderr:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, check=True)
    return report(context, json.loads(done.stdout)["rows"], size, requests)


def report(context: Any, found: list[dict[str, Any]], size: str, requests: int) -> list[dict]:
    rows = {row["request"]: row for row in found}
    table = []
    for row in found:
        table.append(
            {
                "Request": row["request"],
                "Share of mix %": (
                    f"{MIX[row['request']] / sum(MIX.values()) * 100:.1f}"
                    if row["request"] in MIX
                    else "log-in"
                    if row["request"] in LOGIN_REQUESTS
                    else "—"
                ),
                "App CPU ms (mean)": row["cpu_mean_ms"],
                "App CPU ms (p50)": row["cpu_p50_ms"],
                "PostgreSQL CPU ms": row["postgres_ms"],
                "SQL queries": row["queries"],
            }
        )
    figures = capacity(rows)
    table.append(
        {
            "Request": "**mix average (per request)**",
            "Share of mix %": "100",
            "App CPU ms (mean)": figures["request_ms"],
            "App CPU ms (p50)": weighted(rows, "cpu_p50_ms"),
            "PostgreSQL CPU ms": weighted(rows, "postgres_ms"),
            "SQL queries": "",
        }
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    context.note(
        f"{size} demo data; {requests} requests of each type, interleaved, after 3 rounds of "
        f"warm-up; one process, `create_server_app()` in server mode (Redis rate limits, "
        f"multiprocess metrics, JSON log lines at INFO); load average {load}."
    )
    context.note(
        f"A log-in (its page, the POST, the home page) costs {figures['login_ms']:.0f} ms of "
        f"app CPU. {USERS_GOAL:,} users thinking {THINK_SECONDS:.0f} s make "
        f"{figures['requests_per_second']:.0f} requests/s: {figures['cores_steady']:.2f} cores "
        f"for the app alone ({figures['users_per_core']:,.0f} users per core), "
        f"{figures['cores_with_logins']:.2f} while {LOGINS_PER_SECOND}/s log in."
    )
    for label, value, goal in goal_checks(rows):
        context.goal(
            label,
            met=value <= goal,
            target=f"≤ {goal:g} ms",
            measured=f"{value:.1f} ms (load average {load})",
        )
    return table


def prepare(session: Any) -> str:
    """The current term's code; and one assessment in the first section of instructor0001 (the
    demo data has none), so that the gradebook has a column and a mark can be saved."""
    from sqlalchemy import select

    from portal.models import Assessment, Section, User
    from tests.benchmarks.bench_foundation import current_term_code

    instructor = session.scalar(select(User.id).where(User.username == "instructor0001"))
    sections = session.scalars(
        select(Section.id).where(Section.instructor_id == instructor).order_by(Section.id)
    ).all()
    for section_id in sections:
        session.add(
            Assessment(section_id=section_id, name="Lab 1", kind="lab", weight=20, max_points=20)
        )
    session.commit()
    return current_term_code(session)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_request_cost")
    parser.add_argument("--database-url", required=True, help="a database with the demo data")
    parser.add_argument("--term", default="", help="the term code searched (default: latest)")
    parser.add_argument("--requests", type=int, default=100, help="requests of each type")
    parser.add_argument("--profile", type=Path, default=None, help="pyinstrument output here")
    parser.add_argument("--table", action="store_true", help="print the table, not JSON")
    args = parser.parse_args(argv)
    term = args.term
    if not term:
        from sqlalchemy import create_engine
        from sqlalchemy.orm import Session

        from tests.benchmarks.bench_foundation import current_term_code

        engine = create_engine(args.database_url)
        with Session(engine) as session:
            term = current_term_code(session)
        engine.dispose()
    result = measure(args.database_url, term, args.requests, args.profile)
    if args.table:
        from tests.benchmarks.run import markdown_table

        class _Notes:
            notes: list[str] = []

            def note(self, text: str) -> None:
                self.notes.append(text)

            def goal(self, label: str, *, met: bool, target: str, measured: str) -> None:
                verdict = "met" if met else "NOT MET"
                self.notes.append(f"Goal: {label} {target}: {measured}, {verdict}.")

        notes = _Notes()
        print(markdown_table(report(notes, result["rows"], "given", args.requests)), flush=True)
        print("\n".join(f"- {note}" for note in notes.notes), flush=True)
    else:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
