"""Hybrid logical clocks: timestamps that order edits across devices whose clocks disagree.

A timestamp is text that sorts in time order: "<milliseconds>:<counter>:<node>". A device
corrects its wall clock by the offset to the server's clock measured at its last sync, so a
laptop whose clock is days off neither wins nor loses same-field conflicts wrongly; the server
also refuses to trust a timestamp from its own future.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

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


def tick(last: str, now: datetime, node: str, *, offset_ms: int = 0) -> str:
    """The next local timestamp after `last` (empty when none), at `now` corrected by
    `offset_ms` (server clock minus this clock)."""
    physical = millis_of(now) + offset_ms
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
