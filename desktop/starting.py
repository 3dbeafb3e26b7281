"""The portal is built in a background thread while the server and the window come up.

Importing the portal (Flask, SQLAlchemy, the models, the extensions) and bringing the schema up
to date take most of a start; opening the window (GTK, WebKit's processes) takes about as long.
Doing both at once shortens the time until the first page shows. The server listens from the
start with a `PortalBuild` behind the guard: a request that arrives before the portal is built
waits for it, so nothing is answered by a half-built portal:

- built: the request goes to the portal;
- still building after `patience` seconds (a long schema upgrade): 503 with a page that says so
  and reloads itself (JSON for /healthz), so a window never stays blank without a word;
- the build failed (a LauncherProblem): 500 with the problem's text, as the terminal shows it.
"""

from __future__ import annotations

import html
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from desktop.i18n import N_, _, direction, language
from desktop.problems import LauncherProblem

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

App = TypeVar("App", bound=WSGIApp)

STARTING_TITLE = N_("Campus Portal is starting")  # said through _() where it is shown

_PAGE = """<!doctype html>
<html lang="{lang}" dir="{dir}"><head><meta charset="utf-8">{refresh}<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;line-height:1.5;color:#212529}}
h1{{font-size:1.4rem;color:#123d6a}}p,li,pre{{overflow-wrap:anywhere}}pre{{white-space:pre-wrap}}</style>
</head><body><main><h1>{title}</h1>{body}</main></body></html>
"""


class PortalBuild(Generic[App]):
    """Runs `build` once in a thread; a WSGI app that waits for its result (see the module)."""

    def __init__(self, build: Callable[[], App], *, patience: float = 5.0) -> None:
        self._build = build
        self.patience = patience
        self.app: App | None = None
        self.problem: LauncherProblem | None = None
        self.seconds: float | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="portal-build")

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        try:
            self.app = self._build()
        except LauncherProblem as problem:  # the launcher reports it (terminal, window, log)
            self.problem = problem
        except Exception as exc:  # reported like any launcher problem, with the log
            log.exception("building the portal failed")
            self.problem = LauncherProblem(
                _("Campus Portal could not start"),
                _(
                    "An unexpected error stopped it (%(kind)s: %(exc)s). The log file has the "
                    "details; your data was not changed.",
                    kind=type(exc).__name__,
                    exc=exc,
                ),
            )
        finally:
            self.seconds = time.monotonic() - started
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> App:
        """The built portal; raises its LauncherProblem, or TimeoutError."""
        if not self._done.wait(timeout):
            raise TimeoutError("the portal is still being built")
        if self.problem is not None:
            raise self.problem
        assert self.app is not None
        return self.app

    def join(self) -> None:
        """Wait for the build thread to end, whatever its outcome (shutdown)."""
        if self._thread.is_alive():
            self._thread.join()

    # --- WSGI ----------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        app = self.app
        if app is not None:
            return app(environ, start_response)
        self._done.wait(self.patience)
        if self.app is not None:
            return self.app(environ, start_response)
        if self.problem is not None:
            return self._problem(environ, start_response, self.problem)
        return self._starting(environ, start_response)

    def _starting(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if _wants_json(environ):
            return _respond(
                start_response,
                "503 Service Unavailable",
                "application/json",
                json.dumps({"status": "starting"}).encode(),
                [("Retry-After", "1")],
            )
        body = _PAGE.format(
            lang=language(),
            dir=direction(),
            refresh='<meta http-equiv="refresh" content="2">',
            title=html.escape(_(STARTING_TITLE)),
            body="<p>{}</p>".format(
                html.escape(
                    _(
                        "Bringing your data up to date; after an update this can take a minute. "
                        "This page reloads by itself."
                    )
                )
            ),
        )
        return _respond(
            start_response,
            "503 Service Unavailable",
            "text/html; charset=utf-8",
            body.encode(),
            [("Retry-After", "2")],
        )

    def _problem(
        self, environ: dict[str, Any], start_response: StartResponse, problem: LauncherProblem
    ) -> Iterable[bytes]:
        if _wants_json(environ):
            payload = {"status": "error", "problem": problem.title}
            return _respond(
                start_response,
                "500 Internal Server Error",
                "application/json",
                json.dumps(payload).encode(),
                [],
            )
        parts = [f"<p>{html.escape(problem.detail)}</p>"]
        if problem.backups:
            items = "".join(
                f"<li><code>{html.escape(str(p))}</code></li>" for p in problem.backups[:5]
            )
            command = f'campus-portal restore "{problem.backups[0]}"'
            parts += [
                f"<p>{html.escape(_('Backups of this database, newest first:'))}</p>"
                f"<ul>{items}</ul>",
                "<p>{}</p><pre>{}</pre>".format(
                    html.escape(
                        _(
                            "To go back to a backup (the current file is kept next to it first), "
                            "close this window and run:"
                        )
                    ),
                    html.escape(command),
                ),
            ]
        parts.append(f"<p>{html.escape(_('Close this window when you have read this.'))}</p>")
        body = _PAGE.format(
            lang=language(),
            dir=direction(),
            refresh="",
            title=html.escape(problem.title),
            body="".join(parts),
        )
        return _respond(
            start_response,
            "500 Internal Server Error",
            "text/html; charset=utf-8",
            body.encode(),
            [],
        )


def _wants_json(environ: dict[str, Any]) -> bool:
    return environ.get("PATH_INFO") == "/healthz" or "application/json" in environ.get(
        "HTTP_ACCEPT", ""
    )


def _respond(
    start_response: StartResponse,
    status: str,
    content_type: str,
    body: bytes,
    extra: list[tuple[str, str]],
) -> Iterable[bytes]:
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
            ("X-Content-Type-Options", "nosniff"),
            *extra,
        ],
    )
    return [body]
