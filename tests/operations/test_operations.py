"""Readiness, metrics (who may read them, what they count), request ids and JSON log lines."""

from __future__ import annotations

import json
import logging

import pytest
from flask_migrate import upgrade

from portal.extensions import db as _db
from portal.operations import metrics
from portal.operations.logs import JsonFormatter, RequestIdFilter, request_id_from
from tests.conftest import make_app


def migrated_app(tmp_path, **settings):
    app = make_app(tmp_path, f"sqlite:///{tmp_path / 'ready.db'}", **settings)
    with app.app_context():
        _db.drop_all()
        upgrade()
    return app


def test_ready_when_the_schema_is_current(tmp_path):
    response = migrated_app(tmp_path).test_client().get("/readyz")
    assert response.status_code == 200
    assert response.json["ready"] is True
    assert response.json["checks"]["database"]["ok"] is True


def test_not_ready_when_the_schema_is_behind(tmp_path):
    app = migrated_app(tmp_path)
    with app.app_context():
        _db.session.execute(_db.text("UPDATE alembic_version SET version_num = '0001'"))
        _db.session.commit()
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "campus-portal-server migrate" in response.json["checks"]["database"]["error"]


def test_still_ready_when_the_schema_is_newer_than_this_version(tmp_path):
    """An upgrade migrates first; hosts still on the old version keep serving."""
    app = migrated_app(tmp_path)
    with app.app_context():
        _db.session.execute(_db.text("UPDATE alembic_version SET version_num = '9999'"))
        _db.session.commit()
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"]["database"]["note"] == "schema newer than this version"


def test_not_ready_when_a_redis_it_uses_does_not_answer(tmp_path):
    # Port 9 (discard) on loopback: nothing listens there.
    app = migrated_app(tmp_path, JOB_QUEUE_URL="redis://127.0.0.1:9/0")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["redis_job_queue"]["ok"] is False
    assert response.json["checks"]["database"]["ok"] is True


@pytest.mark.parametrize(
    ("address", "allowed", "expected"),
    [
        ("127.0.0.1", "127.0.0.1, ::1", True),
        ("::1", "127.0.0.1, ::1", True),
        ("10.0.5.7", "127.0.0.1, 10.0.5.0/24", True),
        ("10.0.6.7", "127.0.0.1, 10.0.5.0/24", False),
        ("198.51.100.4", "127.0.0.1", False),
        ("not-an-address", "127.0.0.1", False),
        (None, "127.0.0.1", False),
    ],
)
def test_metrics_addresses(address, allowed, expected):
    assert metrics.address_allowed(address, allowed) is expected


def test_server_metrics_count_requests_and_are_closed_to_other_addresses(tmp_path):
    app = make_app(tmp_path, f"sqlite:///{tmp_path / 'server.db'}", MODE="server")
    client = app.test_client()
    assert client.get("/healthz").status_code in (200, 503)
    assert client.get("/api/v1/me").status_code == 401
    page = client.get("/metrics")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert (
        'portal_http_requests_total{endpoint="api_catalogue.me",method="GET",status="401"}' in text
    )
    assert "portal_http_request_duration_seconds_bucket" in text
    assert "portal_db_pool_connections_in_use" in text
    refused = client.get("/metrics", environ_base={"REMOTE_ADDR": "198.51.100.4"})
    assert refused.status_code == 403


def test_desktop_has_no_metrics(client):
    assert client.get("/metrics").status_code == 404


def test_the_request_id_is_taken_from_the_proxy_or_made(client):
    given = client.get("/login", headers={"X-Request-ID": "nginx-abc123"})
    assert given.headers["X-Request-ID"] == "nginx-abc123"
    made = client.get("/login", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["X-Request-ID"] != "bad id with spaces"
    assert len(made.headers["X-Request-ID"]) == 32
    assert request_id_from(None) != request_id_from(None)


def test_log_lines_are_json_with_the_request_id(app, caplog):
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    lines: list[str] = []
    handler.emit = lambda record: lines.append(handler.format(record))  # type: ignore[method-assign]
    logger = logging.getLogger("portal.requests")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        app.test_client().get("/api/v1/me", headers={"X-Request-ID": "trace-42"})
    finally:
        logger.removeHandler(handler)
    entries = [json.loads(line) for line in lines]
    access = next(e for e in entries if e.get("path") == "/api/v1/me")
    assert access["request_id"] == "trace-42"
    assert access["status"] == 401 and access["method"] == "GET"
    assert access["endpoint"] == "api_catalogue.me"
    assert access["level"] == "INFO" and access["logger"] == "portal.requests"


def test_features_count_their_own_figures_through_the_hook(tmp_path):
    """The hook sync uses (portal.operations.metrics.counter): a real counter on the server,
    nothing at all on the desktop (where no one scrapes)."""
    app = make_app(tmp_path, f"sqlite:///{tmp_path / 'hook.db'}", MODE="server")
    metrics.counter("portal_test_hook_total", "A feature's own figure", ("kind",)).labels(
        kind="example"
    ).inc(3)
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'portal_test_hook_total{kind="example"} 3.0' in text
