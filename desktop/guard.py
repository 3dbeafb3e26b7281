"""The local server is not a public server: a WSGI guard in front of the portal.

Another OS user on the same PC can connect to 127.0.0.1:PORT, and any web page in the user's
browser can send requests to it. So every request must pass, in this order:

1. Host header exactly `127.0.0.1:PORT` (a DNS-rebinding page sends its own name) -> else 400.
2. `GET /launch/<token>`: the one-time launch token the launcher handed to its window (or
   printed with --headless) is exchanged for an HttpOnly, SameSite=Strict cookie, then a
   redirect so that the token never stays in the address bar: straight to where the portal
   sends this visitor from `/` (the log-in page when nobody is signed in, a student's
   registrations...), else to `/`. A used, wrong or stale token -> 403.
3. `POST /.campus-portal/focus` and `POST /.campus-portal/launch-url` with the control key
   from the owner-only instance file: a second start asks this one to bring its window to the
   front; `campus-portal open` (and a second start of a headless one) asks for a fresh launch
   URL, so whoever can read the instance file (its OS user) can get back in.
4. `GET /sign-in/callback`: where the system browser comes back from the campus server's
   sign-in page (RFC 8252's loopback redirect). The browser has no cookie, and arrives from the
   server's site, so this one route goes to the portal without either check; the portal
   accepts it only with the state of a sign-in its own window started (one-time, expiring).
5. Everything else needs the cookie -> else 403 (also /healthz and static files; the launcher
   checks its own readiness with the cookie).
6. State-changing methods with an Origin (or, without one, a Referer) of another site -> 403.

The portal's own log-in, CSRF tokens and idle log-out apply on top of this.

Served headless (the pages open in the user's own browser, beside other sites), every answer
also carries `Cross-Origin-Opener-Policy: same-origin`, so no other site's window keeps a
reference to the portal's. The window shows the portal alone and goes without it: WebKit answers
that header by starting a second web process for the first page (100-150 ms of every start).
"""

from __future__ import annotations

import hmac
import html
import io
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.http import parse_cookie

from desktop.i18n import _, direction, language

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
COOKIE_NAME = "portal_launch"
LAUNCH_PREFIX = "/launch/"
CONTROL_PATH = "/.campus-portal/focus"
LAUNCH_URL_PATH = "/.campus-portal/launch-url"
CONTROL_HEADER = "X-Campus-Portal-Control"
CALLBACK_PATH = "/sign-in/callback"  # portal/sync/device/sign_in.py
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_REFUSED_PAGE = """<!doctype html>
<html lang="{lang}" dir="{dir}"><head><meta charset="utf-8"><title>Campus Portal</title></head>
<body><h1>{title}</h1><p>{text}</p></body></html>
"""


class LocalGuard:
    """Wraps the portal's WSGI app; see the module docstring for the rules."""

    def __init__(self, app: WSGIApp, *, on_focus: Callable[[], bool] | None = None) -> None:
        self.app = app
        self.port: int | None = None  # set once waitress has bound its socket
        self.on_focus = on_focus
        self.session_secret = secrets.token_urlsafe(32)
        self.control_key = secrets.token_urlsafe(32)
        self._pending_token: str | None = None
        self._lock = threading.Lock()
        # True unless the launcher shows the portal in its own window (see the module docstring).
        self.isolate_from_other_sites = True
        # When a person last opened a page or sent a form (not the pages' own status polls):
        # the update check waits until the portal has been left alone for a while.
        self.last_activity = time.monotonic()

    def idle_seconds(self) -> float:
        return time.monotonic() - self.last_activity

    # --- what the launcher uses ---------------------------------------------------------------

    @property
    def origin(self) -> str:
        if self.port is None:
            raise RuntimeError("the guard has no port yet")
        return f"http://{HOST}:{self.port}"

    def issue_launch_url(self) -> str:
        """A new one-time launch URL; any earlier unused token stops working."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._pending_token = token
        return f"{self.origin}{LAUNCH_PREFIX}{token}"

    def cookie_header(self) -> str:
        """The Cookie header value that the launcher's own requests (readiness) send."""
        return f"{COOKIE_NAME}={self.session_secret}"

    # --- WSGI ----------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        if self.port is None or environ.get("HTTP_HOST", "") != f"{HOST}:{self.port}":
            return self._refuse(environ, start_response, 400, "unexpected Host header")
        if path.startswith(LAUNCH_PREFIX):
            return self._exchange(environ, start_response, path[len(LAUNCH_PREFIX) :])
        if path in (CONTROL_PATH, LAUNCH_URL_PATH):
            return self._control(environ, start_response, path)
        if path == CALLBACK_PATH and method in ("GET", "HEAD"):
            return self.app(environ, _with_opener_policy(start_response))
        if not self._has_session_cookie(environ):
            return self._refuse(environ, start_response, 403, "no launch cookie")
        if environ.get("HTTP_SEC_FETCH_SITE") == "cross-site":
            return self._refuse(environ, start_response, 403, "cross-site request")
        if method not in SAFE_METHODS and not self._same_origin(environ):
            return self._refuse(environ, start_response, 403, "foreign origin")
        if method not in SAFE_METHODS or "text/html" in environ.get("HTTP_ACCEPT", ""):
            self.last_activity = time.monotonic()
        if self.isolate_from_other_sites:
            return self.app(environ, _with_opener_policy(start_response))
        return self.app(environ, start_response)

    def _exchange(
        self, environ: dict[str, Any], start_response: StartResponse, token: str
    ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in {"GET", "HEAD"}:
            return self._refuse(environ, start_response, 405, "launch link with a wrong method")
        if environ.get("HTTP_SEC_FETCH_SITE") == "cross-site":
            return self._refuse(environ, start_response, 403, "cross-site launch link")
        with self._lock:
            expected = self._pending_token
            valid = expected is not None and hmac.compare_digest(
                token.encode("utf-8", "replace"), expected.encode()
            )
            if valid:
                self._pending_token = None  # one-time: the next use is refused
        if not valid:
            return self._refuse(environ, start_response, 403, "unknown or used launch token")
        log.info("launch token exchanged for the window's cookie")
        location, portal_cookies = self._landing(environ)
        cookie = f"{COOKIE_NAME}={self.session_secret}; Path=/; HttpOnly; SameSite=Strict"
        start_response(
            "303 See Other",
            [
                ("Location", location),
                ("Set-Cookie", cookie),
                *(("Set-Cookie", value) for value in portal_cookies),
                ("Cache-Control", "no-store"),
                ("Referrer-Policy", "no-referrer"),
                ("Content-Length", "0"),
            ],
        )
        return [b""]

    def _landing(self, environ: dict[str, Any]) -> tuple[str, list[str]]:
        """Where the launch redirect goes, and the portal's cookies to pass on with it.

        The portal is asked for `/` as this visitor (their cookies): when it answers with a
        redirect to one of its own pages (the log-in page when nobody is signed in), the
        launch goes there in one hop instead of two. Any other answer (a signed-in home page,
        the "starting" page) is dropped and the launch goes to `/` as before."""
        captured: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> Any:
            captured[:] = [status, headers]
            return lambda _data: None

        inner = {
            **environ,
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "QUERY_STRING": "",
            "CONTENT_LENGTH": "0",
            "wsgi.input": io.BytesIO(),
        }
        inner.pop("CONTENT_TYPE", None)
        body = self.app(inner, start_response)
        try:
            for _chunk in body:  # the status may come with the first chunk
                pass
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        if not captured:
            return "/", []
        status, headers = captured
        cookies = [value for name, value in headers if name.lower() == "set-cookie"]
        location = next((value for name, value in headers if name.lower() == "location"), "")
        if location.startswith(self.origin + "/"):
            location = location[len(self.origin) :]
        if int(status.split(" ", 1)[0]) in REDIRECT_STATUSES and _is_local_path(location):
            return location, cookies
        return "/", cookies

    def _control(
        self, environ: dict[str, Any], start_response: StartResponse, path: str
    ) -> Iterable[bytes]:
        key = environ.get("HTTP_" + CONTROL_HEADER.upper().replace("-", "_"), "")
        if environ.get("REQUEST_METHOD") != "POST" or not hmac.compare_digest(
            key.encode("utf-8", "replace"), self.control_key.encode()
        ):
            return self._refuse(environ, start_response, 403, "control request without the key")
        if path == LAUNCH_URL_PATH:
            log.info("a fresh launch link was handed out (campus-portal open)")
            body = self.issue_launch_url().encode()
        else:
            focused = bool(self.on_focus and self.on_focus())
            body = b"focused" if focused else b"no window"
        start_response(
            "200 OK",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def _has_session_cookie(self, environ: dict[str, Any]) -> bool:
        value = parse_cookie(environ.get("HTTP_COOKIE", "")).get(COOKIE_NAME, "")
        return hmac.compare_digest(value.encode("utf-8", "replace"), self.session_secret.encode())

    def _same_origin(self, environ: dict[str, Any]) -> bool:
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None:
            return origin == self.origin
        referer = environ.get("HTTP_REFERER")
        if referer is not None:
            return referer == self.origin or referer.startswith(self.origin + "/")
        return True  # no Origin, no Referer: not a browser's cross-site request; CSRF applies

    def _refuse(
        self, environ: dict[str, Any], start_response: StartResponse, status: int, reason: str
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(LAUNCH_PREFIX):
            path = LAUNCH_PREFIX + "…"  # never write a token to the log
        log.warning(
            "refused %s %s from %s: %s",
            environ.get("REQUEST_METHOD"),
            path,
            environ.get("REMOTE_ADDR", "?"),
            reason,
        )
        titles = {
            400: ("400 Bad Request", _("Bad request")),
            403: ("403 Forbidden", _("Not available")),
            405: ("405 Method Not Allowed", _("Not available")),
        }
        status_line, title = titles[status]
        body = _REFUSED_PAGE.format(
            lang=language(),
            dir=direction(),
            title=html.escape(title),
            text=html.escape(
                _(
                    "This is the private local server of a Campus Portal window. "
                    "Open Campus Portal from its own icon instead; if it runs without a window "
                    "(--headless), run %(command)s for a new link.",
                    command="\0",
                )
            ).replace("\0", "<code>campus-portal open</code>"),
        ).encode()
        start_response(
            status_line,
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Content-Security-Policy", "default-src 'none'"),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [body]


def _with_opener_policy(start_response: StartResponse) -> StartResponse:
    def start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        if not any(name.lower() == "cross-origin-opener-policy" for name, _ in headers):
            headers = [*headers, ("Cross-Origin-Opener-Policy", "same-origin")]
        return start_response(status, headers, *args)

    return start


def _is_local_path(location: str) -> bool:
    """A path on this server: `/x`, never `//host/x` or a backslash trick."""
    return location.startswith("/") and not location.startswith("//") and "\\" not in location
