"""Long jobs (CSV imports, later other background work), run away from the web request.

- Central server (`job_queue_url` set): the job goes on an RQ queue in Redis, and a
  `campus-portal-server worker` process (its own systemd unit) runs it. A web worker that is
  recycled, or a second host, loses nothing: the job is in Redis, its progress in the shared
  directory, so every instance shows it.
- Desktop (no `job_queue_url`): a thread of the portal itself runs it; there is no Redis there.

Either way the job is a plain function called inside an application context:
`enqueue(app, portal.admin.tasks.run_import, job_id, mode, actor_id, key=job_id)`.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask

log = logging.getLogger(__name__)

QUEUE_NAME = "portal"
JOB_TIMEOUT = 3 * 60 * 60  # seconds: a 100,000-row import with argon2 hashing takes a while
_threads: dict[str, threading.Thread] = {}
_worker_app: Flask | None = None


def _path_of(function: Callable[..., Any]) -> str:
    return f"{function.__module__}.{function.__qualname__}"


def enqueue(app: Flask, function: Callable[..., Any], *args: Any, key: str) -> None:
    """Run `function(*args)` in the background, on the queue when there is one."""
    url = app.config["PORTAL"]["JOB_QUEUE_URL"]
    if url:
        from redis import Redis
        from rq import Queue

        queue = Queue(QUEUE_NAME, connection=Redis.from_url(url))
        queue.enqueue(
            run,
            _path_of(function),
            *args,
            job_timeout=JOB_TIMEOUT,
            result_ttl=24 * 3600,
            failure_ttl=7 * 24 * 3600,
            description=f"{_path_of(function)} {key}",
        )
        return

    def work() -> None:
        with app.app_context():
            _call(_path_of(function), args)

    thread = threading.Thread(target=work, name=f"job-{key}", daemon=True)
    _threads[key] = thread
    thread.start()


def wait(key: str, timeout: float | None = None) -> bool:
    """Wait for an in-process job (tests, the desktop); True when it has finished."""
    thread = _threads.get(key)
    if thread is None:
        return True
    thread.join(timeout)
    if thread.is_alive():
        return False
    _threads.pop(key, None)
    return True


def _call(path: str, args: tuple[Any, ...]) -> None:
    from portal.extensions import db

    module_name, _, name = path.rpartition(".")
    function = getattr(importlib.import_module(module_name), name)
    try:
        function(*args)
    finally:
        db.session.remove()


def run(path: str, *args: Any) -> None:
    """What an RQ worker executes: `path`(*args) inside the worker's application."""
    from portal.extensions import db

    app = _worker_app
    if app is None:  # run outside `campus-portal-server worker` (e.g. rq's own command)
        from portal.wsgi import create_server_app

        app = create_server_app()
    with app.app_context():
        # RQ forks a work horse per job: connections inherited from the parent are not ours.
        db.engine.dispose(close=False)
        _call(path, args)


def work(app: Flask, *, burst: bool = False) -> None:
    """The `campus-portal-server worker` loop: take jobs from the queue until stopped (or, with
    `burst`, until the queue is empty). Warm shutdown on SIGTERM finishes the current job."""
    global _worker_app
    from redis import Redis
    from rq import Queue, Worker

    url = app.config["PORTAL"]["JOB_QUEUE_URL"]
    if not url:
        raise RuntimeError("PORTAL_JOB_QUEUE_URL is not set: there is no queue to work on")
    _worker_app = app
    connection = Redis.from_url(url)
    worker = Worker([Queue(QUEUE_NAME, connection=connection)], connection=connection)
    log.info("worker %s takes jobs from %s", worker.name, QUEUE_NAME)
    worker.work(burst=burst, with_scheduler=False)
