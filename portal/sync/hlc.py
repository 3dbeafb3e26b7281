"""Hybrid logical clocks: timestamps that order edits across devices whose clocks disagree.

A timestamp is text that sorts in time order: "<milliseconds>:<counter>:<node>". A device dates
its edits by the server's clock as measured at its last sync: since that sync, in the same boot
of the computer, by the time elapsed on the boot clock (a clock nobody sets, counting sleep), so
that a wall clock set forward or back after the sync changes nothing; otherwise (after a restart,
or where the system has no boot clock) by its wall clock corrected by the offset measured then.
A device's timestamps never go backwards, and each sync moves them to at least the server's
time (an edit made after a sync is never dated before it). The server refuses to trust a
timestamp from its own future.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")  # Linux: changes at every start of the system

# A device's corrected clock may still drift between syncs; more than this ahead of the server's
# clock is not believed (the edit is dated at the server's now instead).
FUTURE_TOLERANCE_MS = 60_000


@dataclass(frozen=True, order=True)
class Timestamp:
    millis: int
    counter: int
    node: str

    def __str__(self) -> str:
        return f"{self.millis:015d}:{self.counter:05d}:{self.node}"

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        """Read a timestamp written by `str()`; raises ValueError on anything else."""
        try:
            millis, counter, node = text.split(":", 2)
            return cls(int(millis), int(counter), node)
        except (AttributeError, ValueError):
            raise ValueError(f"not a hybrid logical clock timestamp: {text!r}") from None

    @property
    def moment(self) -> datetime:
        return datetime.fromtimestamp(self.millis / 1000, UTC)


def millis_of(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@functools.cache
def _boot_id() -> str:
    try:
        return BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""


def boot_clock() -> tuple[str, int] | None:
    """(this boot of the computer, milliseconds since it began, sleep included): a clock that
    nobody sets and that only goes forward; None where the system gives none (then the wall
    clock is all there is)."""
    boot = _boot_id()
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    if not boot or clock is None:
        return None
    return boot, time.clock_gettime_ns(clock) // 1_000_000


def tick(last: str, now: datetime, node: str, *, offset_ms: int = 0) -> str:
    """The next local timestamp after `last` (empty when none), at `now` corrected by
    `offset_ms` (server clock minus this clock)."""
    return tick_at(last, millis_of(now) + offset_ms, node)


def tick_at(last: str, physical: int, node: str) -> str:
    """The next local timestamp after `last` (empty when none), at `physical` milliseconds of
    the server's clock as this device reckons them."""
    if last:
        previous = Timestamp.parse(last)
        if previous.millis >= physical:
            return str(Timestamp(previous.millis, previous.counter + 1, node))
    return str(Timestamp(physical, 0, node))


def receive(last: str, remote: str, now: datetime, node: str, *, offset_ms: int = 0) -> str:
    """The local clock after seeing `remote`: never behind anything already seen."""
    mine = tick(last, now, node, offset_ms=offset_ms)
    theirs = Timestamp.parse(remote)
    if theirs > Timestamp.parse(mine):
        return str(Timestamp(theirs.millis, theirs.counter + 1, node))
    return mine


def believable(stamp: str, server_now: datetime) -> str:
    """The timestamp the server records for a pushed edit: the device's, unless it claims to
    come from the server's future, in which case the server's now."""
    parsed = Timestamp.parse(stamp)
    limit = millis_of(server_now) + FUTURE_TOLERANCE_MS
    if parsed.millis > limit:
        return str(Timestamp(millis_of(server_now), 0, parsed.node))
    return stamp
