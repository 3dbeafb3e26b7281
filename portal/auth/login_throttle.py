"""Wrong passwords on a desktop copy: a growing wait per account, not per address.

Everyone on a desktop copy comes from 127.0.0.1, so a limit per address (the central server's)
would let one person's typos lock a shared lab PC for everyone. A desktop copy counts each
account's wrong passwords instead: the first few cost nothing, then each one more makes that
account (and only it) wait before the next try, twice as long each time, up to a cap. A right
password clears the account's count. The counts live in the process (a desktop copy is one
process); whoever could restart the app could read its database file as well.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, current_app
from flask_babel import ngettext

EXTENSION = "portal_login_throttle"
FREE_TRIES = 5  # wrong passwords in a row that cost no wait (typos): offline_failed_attempts
FIRST_WAIT_SECONDS = 5.0  # the wait after the FREE_TRIES-th wrong password; doubles each time
LONGEST_WAIT_SECONDS = 15 * 60.0
ACCOUNTS_KEPT = 1000  # accounts whose count is remembered (the oldest forgotten first)


@dataclass
class _Account:
    failures: int = 0
    blocked_until: float = 0.0


def wait_after(failures: int, free_tries: int = FREE_TRIES) -> float:
    """Seconds an account waits after `failures` wrong passwords in a row."""
    if failures < free_tries:
        return 0.0
    return min(FIRST_WAIT_SECONDS * 2 ** (failures - free_tries), LONGEST_WAIT_SECONDS)


class LoginThrottle:
    """Wrong-password counts per account name (as typed, lower case), for one process."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, free_tries: int = FREE_TRIES
    ) -> None:
        self.clock = clock
        self.free_tries = free_tries
        self._accounts: OrderedDict[str, _Account] = OrderedDict()
        self._lock = threading.Lock()

    def seconds_to_wait(self, username: str) -> int:
        """Whole seconds before `username` may try again (0: now)."""
        with self._lock:
            account = self._accounts.get(username)
            if account is None:
                return 0
            return max(0, math.ceil(account.blocked_until - self.clock()))

    def failed(self, username: str) -> int:
        """Count a wrong password; returns the seconds the account must now wait."""
        with self._lock:
            account = self._accounts.pop(username, None) or _Account()
            account.failures += 1
            wait = wait_after(account.failures, self.free_tries)
            account.blocked_until = self.clock() + wait
            self._accounts[username] = account
            while len(self._accounts) > ACCOUNTS_KEPT:
                self._accounts.popitem(last=False)
            return math.ceil(wait)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._accounts.pop(username, None)


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = LoginThrottle(
        free_tries=app.config["PORTAL"]["OFFLINE_FAILED_ATTEMPTS"]
    )


def throttle() -> LoginThrottle:
    return current_app.extensions[EXTENSION]


def in_words(seconds: int) -> str:
    """ "12 seconds", "1 minute", "3 minutes" (rounded up): when to try again."""
    if seconds < 120:
        return ngettext("%(num)d second", "%(num)d seconds", seconds)
    minutes = math.ceil(seconds / 60)
    return ngettext("%(num)d minute", "%(num)d minutes", minutes)
