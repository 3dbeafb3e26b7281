"""The central server's gunicorn settings: what `campus-portal-server serve` runs with, with or
without `--config` (a config file, such as /etc/campus-portal/gunicorn.conf.py from
installers/server, changes settings on top of these; `--bind` and `--workers` come last).

`gunicorn -c python:portal.gunicorn_conf 'portal.wsgi:create_server_app()'` runs the same.
"""

import multiprocessing
import os
from typing import Any

wsgi_app = "portal.wsgi:create_server_app()"

# nginx on the same host forwards to this address; nothing else should reach it.
bind = [os.environ.get("PORTAL_BIND", "127.0.0.1:8000")]

# Processes x threads = requests served at once. The app is stateless (signed-cookie sessions,
# rate limits in Redis, data in PostgreSQL), so more instances behind the load balancer scale out.
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 9)))
worker_class = "gthread"
threads = int(os.environ.get("PORTAL_THREADS", "4"))

# A request may take this long (uploads of lab reports on slow links). A change waiting for
# records another one holds gives up much sooner (lock_wait_seconds, 15 s by default) and is
# answered "busy, try again" (503 with Retry-After), so no worker is killed for waiting.
timeout = 60
graceful_timeout = 30
keepalive = 5
max_requests = 2000  # recycle workers now and then, staggered
max_requests_jitter = 200

# Only nginx (on this host) may set X-Forwarded-* headers that gunicorn believes.
forwarded_allow_ips = os.environ.get("PORTAL_PROXY_ADDRESSES", "127.0.0.1")

# Logs to stderr: journald keeps them (`journalctl -u campus-portal`). The portal writes one JSON
# line per request itself (logger portal.requests, with the request id), so gunicorn's own access
# log is off.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("PORTAL_LOG_LEVEL", "info").lower()
proc_name = "campus-portal-server"

# gunicorn 23+ opens a control socket in $HOME or $XDG_RUNTIME_DIR; the service needs none.
control_socket_disable = True


def post_worker_init(worker: Any) -> None:
    """A worker has loaded the app: what it holds for good is left out of the garbage
    collector's full passes (portal.server.settle_worker)."""
    from portal.server import settle_worker

    settle_worker(worker)


def child_exit(server: Any, worker: Any) -> None:
    """A worker that exited (recycled after max_requests, or crashed) stops counting in the
    live Prometheus gauges (PROMETHEUS_MULTIPROC_DIR, prepared by campus-portal-server serve)."""
    from portal.server import child_exit as mark_dead

    mark_dead(server, worker)
