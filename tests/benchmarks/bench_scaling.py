"""Scaling: requests per second per app core, measured rather than guessed.

One app instance as deployed (`campus-portal-server serve` with installers/server/gunicorn.conf.py,
2 workers x 4 threads) runs under a CPU quota of half a core, then of one core (cgroup v1 `cpu`
controller; root only), behind Debian's nginx, with PostgreSQL, Redis and the load generator
outside the quota. locust runs the load benchmark's mix (tests/benchmarks/locustfile.py) with a
short think time, so the instance is busy all the time: what it answers per second is what that
much CPU serves. The CPU the instance actually used is read from the `cpuacct` controller, so a
busy machine that gives it less than its quota shows as fewer requests and fewer CPU seconds,
not as a worse ratio.

From requests per app CPU-second the module projects (and says so) how many users at 30 s think
time one app core carries, and how many 4-core app hosts a campus of N concurrent users needs.

Bounded by its settings (environment variables):
    SCALING_QUOTAS         cores per run, comma-separated (default 0.5,1)
    SCALING_USERS          concurrent locust users (default 40)
    SCALING_SECONDS        measured time per run, after everyone has logged in (default 60)
    SCALING_THINK_SECONDS  think time between a user's actions (default 0.2)
The demo data size is the first of --sizes (large by default); PostgreSQL only.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TITLE = "Scaling: one app instance under half a core and one core"
HERE = Path(__file__).resolve().parent
SPAWN_RATE = 10.0
THINK_FOR_USERS = 30.0  # the campus's think time in the projection
REQUESTS_PER_ACTION = 1.07  # the mix's requests per user action (bench_request_cost)
BUSY_SHARE = 0.7  # plan cores at most 70 % busy: beyond it p95 latencies climb fast
CORES_PER_HOST = 4
CAMPUS_USERS = (5_000, 20_000)


def _settings() -> tuple[list[float], int, int, str]:
    quotas = [float(q) for q in os.environ.get("SCALING_QUOTAS", "0.5,1").split(",") if q]
    users = int(os.environ.get("SCALING_USERS", "40"))
    seconds = int(os.environ.get("SCALING_SECONDS", "60"))
    think = os.environ.get("SCALING_THINK_SECONDS", "0.2")
    return quotas, users, seconds, think


def _measure(
    context: Any, cluster: Any, limit: Any, users: int, seconds: int, environment: dict[str, str]
) -> dict[str, Any]:
    spawn_seconds = users / SPAWN_RATE
    prefix = context.artifacts / f"scaling-{limit.cores:g}"
    command = [
        sys.executable, "-m", "locust",
        "-f", str(HERE / "locustfile.py"),
        "--headless", "--only-summary", "--reset-stats",
        "--host", cluster.url,
        "--users", str(users),
        "--spawn-rate", str(SPAWN_RATE),
        "--run-time", f"{int(spawn_seconds + seconds)}s",
        "--stop-timeout", "30",
        "--csv", str(prefix),
        "--exit-code-on-error", "0",
    ]  # fmt: skip
    print(f"  {limit.cores:g} core: {int(spawn_seconds + seconds)} s", file=sys.stderr, flush=True)
    locust = subprocess.Popen(
        command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(spawn_seconds)  # everyone has logged in: locust resets its figures here
    cpu_from, wall_from = limit.cpu_seconds(), time.monotonic()
    locust.wait(timeout=spawn_seconds + seconds + 300)
    cpu_used, wall = limit.cpu_seconds() - cpu_from, time.monotonic() - wall_from
    with Path(f"{prefix}_stats.csv").open(newline="") as handle:
        total = {row["Name"]: row for row in csv.DictReader(handle)}["Aggregated"]
    requests = int(total["Request Count"])
    return {
        "Quota (cores)": limit.cores,
        "Requests": requests,
        "Req/s": round(requests / wall, 1),
        "App CPU used (cores)": round(cpu_used / wall, 2),
        "App CPU ms per request": round(1000 * cpu_used / max(requests, 1), 2),
        "Req/s per app core": round(requests / max(cpu_used, 1e-9), 1),
        "p95 ms": float(total["95%"]),
        "Errors": int(total["Failure Count"]),
    }


def run(context: Any) -> list[dict[str, Any]]:
    from tests.benchmarks.bench_foundation import current_term_code
    from tests.benchmarks.bench_load import _warm_up
    from tests.benchmarks.harness import build_portal
    from tests.conftest import REDIS_URL
    from tests.server.cluster import CpuLimit, running_cluster

    why_not = CpuLimit.available()
    if why_not:
        context.problem(f"no CPU quota can be set here: {why_not}")
        return []
    quotas, users, seconds, think = _settings()
    size = context.sizes[0]
    url = context._fresh_postgres_database(f"portal_bench_scaling_{size}")
    folder = Path(tempfile.mkdtemp(prefix="portal-bench-scaling-"))
    context._temp_dirs.append(folder)
    print(f"… building {size} demo data for the scaling run", file=sys.stderr, flush=True)
    app, _ = build_portal(url, size, folder / "build")
    from portal.extensions import db

    with app.app_context():
        term = current_term_code(db.session)
        db.session.remove()
        db.engine.dispose()
    environment = {
        **os.environ,
        "LOAD_TERM": term,
        "LOAD_THINK_SECONDS": think,
        "LOAD_STUDENTS": "20000" if size == "large" else "60",
        "LOAD_INSTRUCTORS": "400" if size == "large" else "6",
    }
    rows = []
    for cores in quotas:
        limit = CpuLimit(cores)
        with running_cluster(
            folder / f"cluster-{cores:g}",
            url,
            REDIS_URL,
            instances=1,
            workers=2,
            job_worker=False,
            cpu_limit=limit,
            extra_env={
                "PORTAL_LOGIN_RATE_LIMIT": "1000000 per minute",
                "PORTAL_API_RATE_LIMIT": "1000000 per minute",
                "PORTAL_LOG_LEVEL": "ERROR",
            },
        ) as cluster:
            _warm_up(cluster.url)
            rows.append(_measure(context, cluster, limit, users, seconds, environment))
    context.note(
        f"{users} locust users, think time {think} s, {seconds} s measured per quota after they "
        f"logged in; {size} demo data; 1 instance x 2 workers x 4 threads; nginx, PostgreSQL, "
        "Redis and locust on this machine outside the quota."
    )
    for row in rows:
        if row["App CPU used (cores)"] < 0.9 * row["Quota (cores)"]:
            context.note(
                f"At {row['Quota (cores)']:g} core the instance used only "
                f"{row['App CPU used (cores)']:g}: the machine (or too few users), not the quota, "
                "set its pace; requests per app CPU-second still hold, requests per second do not."
            )
    if rows and all(row["Requests"] for row in rows):
        per_core = min(row["Req/s per app core"] for row in rows)
        users_per_core = per_core * BUSY_SHARE * THINK_FOR_USERS / REQUESTS_PER_ACTION
        context.note(
            f"Measured: {per_core:.0f} requests per second per app core (the lower of the runs). "
            f"Projection (not measured): at {THINK_FOR_USERS:g} s think time and "
            f"{BUSY_SHARE:.0%} busy, one app core carries about {users_per_core:,.0f} users; "
            + "; ".join(
                f"{campus:,} users need about {campus / users_per_core:.1f} app cores "
                f"({_hosts(campus, users_per_core)})"
                for campus in CAMPUS_USERS
            )
            + ", plus PostgreSQL's share (bench_request_cost) and nginx."
        )
    return rows


def _hosts(campus: int, users_per_core: float) -> str:
    """The app hosts of CORES_PER_HOST cores that `campus` users need ("1 host of 4 cores")."""
    hosts = max(1, -(-campus // int(users_per_core * CORES_PER_HOST)))
    return f"{hosts} host{'s' if hosts > 1 else ''} of {CORES_PER_HOST} cores"
