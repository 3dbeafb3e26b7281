"""Load: campus users against the central server as deployed (two gunicorn instances behind
Debian's nginx, PostgreSQL, Redis, the job worker; tests/server/cluster.py), driven by locust
(tests/benchmarks/locustfile.py) from this same machine, at rising numbers of concurrent users.

Each level starts from no users: they arrive at LOAD_SPAWN_RATE per second (a log-in storm:
5,000 students in 10 minutes is 8.3 per second), each logs in and then acts every ~30 s (think
time), and the level holds for LOAD_HOLD_SECONDS once everyone is in. Reported per level:
throughput, p50/p95/p99 of pages and API calls, p95 of the log-in, errors; and the largest level
held with page p95 under 300 ms, log-in p95 under 1 s and no errors.

Bounded by its settings (environment variables):
    LOAD_USERS         comma-separated levels (default 100,500,1000,2000,5000)
    LOAD_SPAWN_RATE    users arriving per second (default 8.3)
    LOAD_HOLD_SECONDS  time at full strength per level (default 120)
    LOAD_THINK_SECONDS think time between a user's actions (default 30)
    LOAD_GUNICORN_WORKERS / LOAD_GUNICORN_THREADS per instance (default 2 and 4)
The demo data size is the first of --sizes (large by default); PostgreSQL only.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

TITLE = "Load: two instances behind nginx, locust users"
HERE = Path(__file__).resolve().parent
PAGE_GOAL_MS = 300
LOGIN_GOAL_MS = 1000
LOGIN = "log in"


def _levels() -> list[int]:
    return [int(n) for n in os.environ.get("LOAD_USERS", "100,500,1000,2000,5000").split(",") if n]


def _stats(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["Name"]: row for row in csv.DictReader(handle)}


def _percentile(rows: list[dict[str, str]], column: str) -> float:
    """The worst of the rows' percentile (a conservative figure across request names)."""
    values = [float(row[column]) for row in rows if row[column] not in ("", "N/A")]
    return max(values) if values else 0.0


def _run_level(context: Any, cluster: Any, users: int, environment: dict[str, str]) -> dict:
    spawn = float(os.environ.get("LOAD_SPAWN_RATE", "8.3"))
    hold = int(os.environ.get("LOAD_HOLD_SECONDS", "120"))
    seconds = int(users / spawn) + hold
    prefix = context.artifacts / f"load-{users}"
    command = [
        sys.executable, "-m", "locust",
        "-f", str(HERE / "locustfile.py"),
        "--headless", "--only-summary",
        "--host", cluster.url,
        "--users", str(users),
        "--spawn-rate", str(spawn),
        "--run-time", f"{seconds}s",
        "--stop-timeout", "30",
        "--csv", str(prefix),
        "--exit-code-on-error", "0",
    ]  # fmt: skip
    print(f"  {users} users: {seconds} s", file=sys.stderr, flush=True)
    subprocess.run(command, env=environment, check=True, timeout=seconds + 300, capture_output=True)
    stats = _stats(Path(f"{prefix}_stats.csv"))
    total = stats.pop("Aggregated")
    login = stats.get(LOGIN, {})
    others = [row for name, row in stats.items() if name != LOGIN]
    pages = [row for name, row in stats.items() if name != LOGIN and not name.startswith("API")]
    api = [row for name, row in stats.items() if name.startswith("API")]
    failures = int(total["Failure Count"])
    result = {
        "Users": users,
        "Requests": int(total["Request Count"]),
        "Req/s": float(total["Requests/s"]),
        "Errors": failures,
        "Pages p50 ms": _percentile(pages, "50%"),
        "Pages p95 ms": _percentile(pages, "95%"),
        "Pages p99 ms": _percentile(pages, "99%"),
        "API p95 ms": _percentile(api, "95%"),
        "Log-in p95 ms": float(login.get("95%") or 0),
        "All p95 ms": float(total["95%"]),
    }
    held = (
        failures == 0
        and _percentile(others, "95%") < PAGE_GOAL_MS
        and result["Log-in p95 ms"] < LOGIN_GOAL_MS
    )
    result["Held"] = context.goal(
        f"{users} concurrent users held",
        met=held,
        target=f"pages and API p95 < {PAGE_GOAL_MS} ms, log-in p95 < {LOGIN_GOAL_MS} ms, 0 errors",
        measured=(
            f"p95 {_percentile(others, '95%'):.0f} ms, log-in p95 "
            f"{result['Log-in p95 ms']:.0f} ms, {failures} errors"
        ),
    )
    return result


def _warm_up(url: str, requests: int = 60) -> None:
    """A few requests through nginx before measuring, so that each gunicorn worker has built its
    templates and connection pool (a server in use has); the users' own first requests, log-in
    included, are still measured."""
    import urllib.error
    import urllib.request

    from tests.server.cluster import insecure_context

    context = insecure_context()
    for n in range(requests):
        path = ("/login", "/healthz", "/api/v1/openapi.json")[n % 3]
        try:
            urllib.request.urlopen(url + path, timeout=60, context=context).close()
        except urllib.error.HTTPError:
            continue


def run(context: Any) -> list[dict[str, Any]]:
    from tests.benchmarks.bench_foundation import current_term_code
    from tests.benchmarks.harness import build_portal
    from tests.conftest import REDIS_URL
    from tests.server.cluster import running_cluster

    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        context.problem("nginx is not installed (make bench installs the APT_TEST packages)")
        return []
    size = context.sizes[0]
    url = context._fresh_postgres_database(f"portal_bench_load_{size}")
    folder = Path(tempfile.mkdtemp(prefix="portal-bench-load-"))
    context._temp_dirs.append(folder)
    print(f"… building {size} demo data for the load run", file=sys.stderr, flush=True)
    app, build_seconds = build_portal(url, size, folder / "build")
    from portal.extensions import db

    with app.app_context():
        term = current_term_code(db.session)
        db.session.remove()
        db.engine.dispose()
    workers = os.environ.get("LOAD_GUNICORN_WORKERS", "2")
    threads = int(os.environ.get("LOAD_GUNICORN_THREADS", "4"))
    rows = []
    with running_cluster(
        folder / "cluster",
        url,
        REDIS_URL,
        workers=int(workers),
        threads=threads,
        nginx_workers=2,
        extra_env={"PORTAL_LOGIN_RATE_LIMIT": "1000000 per minute", "PORTAL_LOG_LEVEL": "ERROR"},
    ) as cluster:
        _warm_up(cluster.url)
        environment = {
            **os.environ,
            "LOAD_TERM": term,
            "LOAD_STUDENTS": "20000" if size == "large" else "60",
            "LOAD_INSTRUCTORS": "400" if size == "large" else "6",
        }
        for users in _levels():
            rows.append(_run_level(context, cluster, users, environment))
    held = [row["Users"] for row in rows if row["Held"] == "met"]
    think = os.environ.get("LOAD_THINK_SECONDS", "30")
    context.note(
        f"2 gunicorn instances × {workers} workers × {threads} threads, nginx (2 workers), "
        f"PostgreSQL, Redis and the load generator on this machine; {size} demo data "
        f"(built in {build_seconds:.0f} s); think time {think} s; "
        f"users arrive at {os.environ.get('LOAD_SPAWN_RATE', '8.3')}/s."
    )
    context.note(
        f"Largest level held (pages and API p95 < {PAGE_GOAL_MS} ms, log-in p95 < "
        f"{LOGIN_GOAL_MS} ms, no errors): {max(held) if held else 'none of those run'}."
    )
    if 5000 not in [row["Users"] for row in rows]:
        context.note("5,000 users: not measured in this run (set LOAD_USERS to include it).")
    elif 5000 not in held:
        context.note("Goal of 5,000 concurrent users: not met in this run.")
    return rows
