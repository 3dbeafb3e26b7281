"""Readiness: can this instance serve? The database answers at the current schema, and every
Redis the settings name (rate limits, job queue) answers a PING."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session


def check_database(db: Session, expected_revision: str) -> dict[str, Any]:
    try:
        revision = db.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:  # any failure is a "not ready", reported, never raised
        db.rollback()
        return {"ok": False, "error": type(exc).__name__}
    db.rollback()
    if revision != expected_revision:
        return {
            "ok": False,
            "error": f"schema at {revision}, this version needs {expected_revision}: "
            "run `campus-portal-server migrate`",
        }
    return {"ok": True, "revision": revision}


def redis_urls(settings: dict[str, Any]) -> dict[str, str]:
    """The Redis servers this instance depends on, by what they are for."""
    urls = {}
    if str(settings["RATELIMIT_STORAGE_URI"]).startswith(("redis://", "rediss://")):
        urls["rate_limits"] = settings["RATELIMIT_STORAGE_URI"]
    if settings["JOB_QUEUE_URL"]:
        urls["job_queue"] = settings["JOB_QUEUE_URL"]
    return urls


def check_redis(url: str, timeout: float = 2.0) -> dict[str, Any]:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        client.ping()
        client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def readiness(db: Session, settings: dict[str, Any], expected_revision: str) -> dict[str, Any]:
    checks: dict[str, Any] = {"database": check_database(db, expected_revision)}
    for name, url in redis_urls(settings).items():
        checks[f"redis_{name}"] = check_redis(url)
    return {"ready": all(check["ok"] for check in checks.values()), "checks": checks}
