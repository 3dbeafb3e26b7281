"""Rate limits counted in one Redis round trip, with the `X-RateLimit-*` headers from it.

Flask-Limiter's fixed window counts a request with one call to the storage and, for the
`X-RateLimit-Limit/-Remaining/-Reset` headers (and `Retry-After`), asks it again for the count
and for the window's expiry: three Redis round trips on every rate-limited API call. Here the
count and the window's time to live come back from the same Lua script, and the headers of that
request are answered from them. Same keys, same counting, same window as the library's
`fixed-window` strategy; with another storage (memory:// on the desktop) nothing changes.
"""

from __future__ import annotations

import time
from typing import Any

from flask import g, has_app_context
from limits import RateLimitItem
from limits.storage import RedisStorage
from limits.strategies import STRATEGIES, FixedWindowRateLimiter
from limits.util import WindowStats

NAME = "portal-fixed-window"

# INCRBY and, on the window's first request, EXPIRE (as limits' incr_expire.lua), then the
# count and the seconds the window has left.
COUNT_AND_TTL = b"""
local amount = tonumber(ARGV[2])
local current = redis.call("incrby", KEYS[1], amount)
if tonumber(current) == amount then
    redis.call("expire", KEYS[1], ARGV[1])
end
return {current, redis.call("ttl", KEYS[1])}
"""
_WINDOWS = "_rate_limit_windows"


class OneTripFixedWindow(FixedWindowRateLimiter):
    """The fixed window; on Redis, `hit` makes one round trip and keeps the window's stats
    for `get_window_stats` in the same request."""

    def __init__(self, storage: Any) -> None:
        super().__init__(storage)
        self._script = None
        if isinstance(storage, RedisStorage):
            self._script = storage.get_connection().register_script(COUNT_AND_TTL)

    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        if self._script is None or not has_app_context():
            return super().hit(item, *identifiers, cost=cost)
        key = item.key_for(*identifiers)
        storage: RedisStorage = self.storage  # type: ignore[assignment]
        count, ttl = self._script([storage.prefixed_key(key)], [item.get_expiry(), cost])
        windows: dict[str, WindowStats] = g.setdefault(_WINDOWS, {})
        windows[key] = WindowStats(time.time() + max(int(ttl), 0), max(0, item.amount - count))
        return int(count) <= item.amount

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        if has_app_context():
            known = g.get(_WINDOWS, {}).get(item.key_for(*identifiers))
            if known is not None:
                return known
        return super().get_window_stats(item, *identifiers)


STRATEGIES[NAME] = OneTripFixedWindow  # type: ignore[assignment]
