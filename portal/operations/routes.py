"""/readyz for load balancers and /metrics for Prometheus (/healthz is in portal/main)."""

from __future__ import annotations

from functools import cache

from flask import Blueprint, Response, abort, current_app, jsonify, request

from portal.auth.policy import public
from portal.database import SCHEMA_REVISION
from portal.operations import metrics, services
from portal.web import db_session

bp = Blueprint("operations", __name__)


@cache
def known_revisions() -> frozenset[str]:
    """The migrations this version ships (a database at one of them, not the newest, is behind)."""
    from alembic.script import ScriptDirectory

    from portal import MIGRATIONS_DIR

    return frozenset(
        script.revision for script in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions()
    )


@bp.get("/readyz")
@public
def readyz() -> tuple[Response, int]:
    """200 when this instance can serve: database reachable at the current schema, and every
    Redis it uses answering; else 503 with what failed (a load balancer takes it out)."""
    result = services.readiness(
        db_session(),
        current_app.config["PORTAL"],
        SCHEMA_REVISION,
        known_revisions(),
    )
    return jsonify(result), 200 if result["ready"] else 503


@bp.get("/metrics")
@public  # no portal log-in: Prometheus scrapes it; access is by client address instead
def prometheus_metrics() -> Response:
    settings = current_app.config["PORTAL"]
    if settings["MODE"] != "server":
        abort(404)
    if not metrics.address_allowed(request.remote_addr, settings["METRICS_ALLOWED_ADDRESSES"]):
        abort(403)
    body, content_type = metrics.exposition()
    response = Response(body, content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response
