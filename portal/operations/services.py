"""Readiness: can this instance serve? The database answers at the current schema, and every
Redis the settings name (rate limits, job queue) answers a PING."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session


def check_database(
    db: Session, expected_revision: str, known_revisions: frozenset[str]
) -> dict[str, Any]:
    """Ready at this version's schema, and also at a newer one (migrations only add, and an
    upgrade migrates first, then restarts hosts one by one: the old hosts keep serving). Not
    ready at an older schema: `campus-portal-server migrate` has not run yet."""
    try:
        revision = db.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:  # any failure is a "not ready", reported, never raised
        db.rollback()
        return {"ok": False, "error": type(exc).__name__}
    db.rollback()
    if revision == expected_revision:
        return {"ok": True, "revision": revision}
    if revision in known_revisions or revision is None:
        return {
            "ok": False,
            "error": f"schema at {revision}, this version needs {expected_revision}: "
            "run `campus-portal-server migrate`",
        }
    return {"ok": True, "revision": revision, "note": "schema newer than this version"}


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


def readiness(
    db: Session,
    settings: dict[str, Any],
    expected_revision: str,
    known_revisions: frozenset[str],
) -> dict[str, Any]:
    checks: dict[str, Any] = {"database": check_database(db, expected_revision, known_revisions)}
    for name, url in redis_urls(settings).items():
        checks[f"redis_{name}"] = check_redis(url)
    return {"ready": all(check["ok"] for check in checks.values()), "checks": checks}
