"""Prometheus metrics of the central server (prometheus-client).

Under gunicorn every worker is a process of its own, so the metrics use prometheus-client's
multiprocess mode: each process writes its values to files in PROMETHEUS_MULTIPROC_DIR (made
fresh by `campus-portal-server serve`), `/metrics` adds them up, and gunicorn's `child_exit` hook
(installers/server/gunicorn.conf.py) marks a recycled worker's files dead. Without that variable
(one process) the default registry is used.

What is measured: requests by endpoint, method and status; latency by endpoint; server errors
and unhandled exceptions; database connections in use and opened. Other features add their own
counters with `counter(...)` (sync will count pushed and pulled changes this way); on the desktop,
where metrics are off, it returns a counter that does nothing.
"""

from __future__ import annotations

import ipaddress
import os
import time
from functools import cache
from typing import Any

from flask import Flask, Response, g, request

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_enabled = False


class _NoCounter:
    def labels(self, *args: Any, **kwargs: Any) -> _NoCounter:
        return self

    def inc(self, amount: float = 1) -> None:
        return None


@cache
def _metrics() -> dict[str, Any]:
    from prometheus_client import Counter, Gauge, Histogram

    return {
        "requests": Counter(
            "portal_http_requests_total",
            "HTTP requests answered",
            ["endpoint", "method", "status"],
        ),
        "latency": Histogram(
            "portal_http_request_duration_seconds",
            "Time to answer a request",
            ["endpoint", "method"],
            buckets=_LATENCY_BUCKETS,
        ),
        "server_errors": Counter(
            "portal_http_server_errors_total", "Answers with a 5xx status", ["endpoint", "status"]
        ),
        "unhandled": Counter(
            "portal_unhandled_exceptions_total", "Exceptions no handler expected", ["endpoint"]
        ),
        "db_in_use": Gauge(
            "portal_db_pool_connections_in_use",
            "Database connections checked out of the pool",
            multiprocess_mode="livesum",
        ),
        "db_opened": Counter("portal_db_connections_opened_total", "Database connections opened"),
        "db_pool_size": Gauge(
            "portal_db_pool_size",
            "Configured pool size, summed over live processes",
            multiprocess_mode="livesum",
        ),
    }


def counter(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Any:
    """A Counter for a feature's own figures (e.g. sync); a no-op when metrics are off."""
    if not _enabled:
        return _NoCounter()
    return _feature_counter(name, documentation, labels)


@cache
def _feature_counter(name: str, documentation: str, labels: tuple[str, ...]) -> Any:
    from prometheus_client import Counter

    return Counter(name, documentation, list(labels))


def record_unhandled_error() -> None:
    if _enabled:
        _metrics()["unhandled"].labels(endpoint=request.endpoint or "none").inc()


def exposition() -> tuple[bytes, str]:
    """The text format for Prometheus, summed over every worker process when there are several."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def address_allowed(address: str | None, allowed: str) -> bool:
    """`allowed` is a comma-separated list of addresses or networks (setting
    METRICS_ALLOWED_ADDRESSES)."""
    if not address:
        return False
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    for item in allowed.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            if client in ipaddress.ip_network(item, strict=False):
                return True
        except ValueError:
            continue
    return False


def _start() -> None:
    g.metrics_started = time.perf_counter()


def _finish(response: Response) -> Response:
    started = g.get("metrics_started")
    endpoint = request.endpoint or "none"
    metrics = _metrics()
    status = str(response.status_code)
    metrics["requests"].labels(endpoint=endpoint, method=request.method, status=status).inc()
    if started is not None:
        metrics["latency"].labels(endpoint=endpoint, method=request.method).observe(
            time.perf_counter() - started
        )
    if response.status_code >= 500:
        metrics["server_errors"].labels(endpoint=endpoint, status=status).inc()
    return response


def _watch_pool(app: Flask) -> None:
    from sqlalchemy import event

    from portal.extensions import db

    with app.app_context():
        engine = db.engine
    metrics = _metrics()
    size = getattr(engine.pool, "size", None)
    if callable(size):
        metrics["db_pool_size"].set(size())
    event.listen(engine.pool, "connect", lambda *_: metrics["db_opened"].inc())
    event.listen(engine.pool, "checkout", lambda *_: metrics["db_in_use"].inc())
    event.listen(engine.pool, "checkin", lambda *_: metrics["db_in_use"].dec())


def init_app(app: Flask) -> None:
    """Collect metrics (the central server only: the desktop has nobody to scrape it)."""
    global _enabled
    _enabled = True
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_finish)
    _watch_pool(app)
