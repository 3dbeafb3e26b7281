"""At most `login_concurrency` password checks at once per server process.

Argon2 is deliberately costly. Without a bound, a log-in storm (a campus at 8 a.m.) puts every
thread of every worker on hashing, and page requests queue behind them. With it, extra log-ins
wait up to `login_wait_seconds` for a slot, then get a quick "busy, try again" (503 with
Retry-After) while pages keep being served.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app

EXTENSION = "portal_login_slots"


def init_app(app: Flask) -> None:
    limit = max(1, int(app.config["PORTAL"]["LOGIN_CONCURRENCY"]))
    app.extensions[EXTENSION] = threading.BoundedSemaphore(limit)


@contextmanager
def login_slot() -> Iterator[bool]:
    """Yields True with a slot held, or False when none freed up in time."""
    slots: threading.BoundedSemaphore = current_app.extensions[EXTENSION]
    acquired = slots.acquire(timeout=float(current_app.config["PORTAL"]["LOGIN_WAIT_SECONDS"]))
    try:
        yield acquired
    finally:
        if acquired:
            slots.release()
