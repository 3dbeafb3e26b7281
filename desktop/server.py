"""The embedded waitress server: one background thread on 127.0.0.1, stopped gracefully."""

from __future__ import annotations

import http.client
import logging
import threading
import time
from typing import Any

from waitress.server import create_server

from desktop.guard import HOST

log = logging.getLogger(__name__)


class ServerNotReady(Exception):
    """The server did not answer /healthz with 200 in time."""


class EmbeddedServer:
    """waitress serving `app` on 127.0.0.1 (port 0: a free one) from a background thread."""

    def __init__(self, app: Any, *, port: int = 0, threads: int = 6) -> None:
        # create_server binds and listens at once: connections made from now on wait in the
        # backlog until the loop runs, so a readiness check needs no retry on "refused".
        self._server: Any = create_server(
            app,
            host=HOST,
            port=port,
            threads=threads,
            ident="campus-portal",
            clear_untrusted_proxy_headers=True,
        )
        self.port: int = self._server.effective_port
        self._thread = threading.Thread(target=self._run, name="waitress", daemon=True)
        self._stopped = threading.Event()

    def _run(self) -> None:
        try:
            self._server.run()
        finally:
            self._stopped.set()

    def start(self) -> None:
        self._thread.start()
        log.info("serving on http://%s:%s", HOST, self.port)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let running requests finish (their transactions commit), close."""
        if not self._thread.is_alive():
            return
        server = self._server
        listening_closed = threading.Event()

        def stop_listening() -> None:  # runs in the server's loop thread
            server.accepting = False
            server.del_channel()
            server.socket.close()
            listening_closed.set()

        server.trigger.pull_trigger(stop_listening)
        listening_closed.wait(timeout)
        # Threads finish the request they are serving, then exit; queued ones are cancelled
        # (their clients get no answer, so nothing was promised to them).
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)

        def close_channels() -> None:
            for channel in list(server._map.values()):
                channel.close()

        server.trigger.pull_trigger(close_channels)
        self._stopped.wait(timeout)
        self._thread.join(timeout)
        log.info("server stopped")


def wait_until_healthy(port: int, cookie: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """GET /healthz (with the launcher's own cookie) until it answers 200; return its JSON.

    The socket is already listening, so the first attempt normally succeeds as soon as the
    app answers; a 503 (database not ready) is retried after a short pause.
    """
    import json

    deadline = time.monotonic() + timeout
    last_error = "no answer"
    pause = threading.Event()
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection(HOST, port, timeout=max(0.1, timeout))
        try:
            connection.request(
                "GET",
                "/healthz",
                headers={"Host": f"{HOST}:{port}", "Cookie": cookie, "Accept": "application/json"},
            )
            response = connection.getresponse()
            body = response.read()
            if response.status == 200:
                return dict(json.loads(body))
            last_error = f"HTTP {response.status}: {body[:200]!r}"
        except OSError as exc:
            last_error = str(exc)
        finally:
            connection.close()
        pause.wait(0.05)
    raise ServerNotReady(f"/healthz did not answer 200 within {timeout:.0f}s ({last_error})")
