"""Durability: SIGKILL the launcher at random moments; every acknowledged write survives.

Each cycle starts the real launcher headless on the same small database, writes through HTTP
as the administrator (creating accounts with the admin form: one transaction per request), and
kills the server process with SIGKILL at a random moment, sometimes while it is still starting.
The next start must show every account whose creation got a success response, and
`PRAGMA integrity_check` must say ok. CRASH_CYCLES sets the number of cycles (default 50;
the reliability run uses more); CRASH_SEED replays a failing sequence.
"""

from __future__ import annotations

import http.client
import os
import random
import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from tests.desktop.conftest import ADMIN_PASSWORD, log_in
from tests.desktop.launcher_process import Launcher, PortalClient

CYCLES = int(os.environ.get("CRASH_CYCLES", "50"))
KILL_DURING_START_EVERY = 5


def _state(database: Path) -> tuple[set[str], str]:
    with closing(sqlite3.connect(database, timeout=30)) as connection:
        names = {row[0] for row in connection.execute("SELECT username FROM users")}
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
    return names, integrity


def _write_until_killed(
    client: PortalClient,
    token: str,
    cycle: int,
    acknowledged: list[str],
    arm_after: int,
    arm_killer: Callable[[], None],
) -> int:
    """Create accounts until the server dies; the killer is armed after `arm_after` of them
    were acknowledged (so every cycle writes, however slow the machine). Returns how many were
    acknowledged."""
    made = 0
    if arm_after == 0:
        arm_killer()
    for number in range(10_000):
        username = f"crash-{cycle}-{number}"
        try:
            response = client.post(
                "/admin/users/new",
                {
                    "csrf_token": token,
                    "username": username,
                    "full_name": f"Crash {cycle} {number}",
                    "role": "instructor",
                    "password": ADMIN_PASSWORD,
                },
            )
        except (OSError, http.client.HTTPException):
            break  # killed while this request was in flight: nothing was promised
        assert response.status == 302, response.text[:300]
        acknowledged.append(username)
        made += 1
        if made == arm_after:
            arm_killer()
    return made


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_no_acknowledged_write(admin_data_dir):
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    database = admin_data_dir / "portal.db"
    acknowledged: list[str] = []
    kills_in_start = kills_in_writes = minimum_writes = 0

    for cycle in range(CYCLES):
        launcher = Launcher(admin_data_dir)
        if cycle % KILL_DURING_START_EVERY == KILL_DURING_START_EVERY - 1:
            # a kill while the launcher checks, migrates, backs up or binds
            process = launcher.spawn()
            killer = threading.Timer(rng.uniform(0.0, 1.5), process.kill)
            killer.start()
            killer.join()
            launcher.finish()
            kills_in_start += 1
            continue

        launcher.start()
        present, integrity = _state(database)
        assert integrity == "ok", f"seed {seed}, cycle {cycle}: {integrity}"
        missing = set(acknowledged) - present
        assert not missing, f"seed {seed}, cycle {cycle}: lost {sorted(missing)}"

        client = launcher.client()
        log_in(client)
        token = client.csrf_token("/admin/users/new")
        # 0-3 writes for sure, then a kill at a random moment in the next 0.5 s of writing
        # (each account costs a password hash: about 0.1 s on an idle machine)
        arm_after = rng.randint(0, 3)
        minimum_writes += arm_after
        killer = threading.Timer(rng.uniform(0.0, 0.5), launcher.process.kill)
        try:
            _write_until_killed(client, token, cycle, acknowledged, arm_after, killer.start)
        finally:
            if killer.is_alive() or killer.finished.is_set():
                killer.join()
            else:
                launcher.process.kill()  # the writes stopped before the killer was armed
            launcher.finish()
        kills_in_writes += 1

    final = Launcher(admin_data_dir).start()
    try:
        present, integrity = _state(database)
    finally:
        code, _, stderr = final.stop()
    assert code == 0, stderr
    assert integrity == "ok", f"seed {seed}"
    assert set(acknowledged) <= present, f"seed {seed}: lost {set(acknowledged) - present}"
    assert len(acknowledged) >= minimum_writes, f"seed {seed}"
    assert kills_in_start + kills_in_writes == CYCLES
