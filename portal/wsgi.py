"""The central server's WSGI app, for gunicorn: `gunicorn 'portal.wsgi:create_server_app()'`.

Settings come from the environment (PORTAL_DATABASE_URL, PORTAL_SECRET_KEY,
PORTAL_RATELIMIT_STORAGE_URI, ...; see installers/server/server.env.example) and the
machine-wide file, as for every copy of the portal; this module only forces server mode and
trusts the reverse proxy in front of it.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from portal import create_app

# How many reverse proxies (nginx, a load balancer) stand between the users and gunicorn: their
# X-Forwarded-For/-Proto/-Host headers are believed, so that rate limits count real client
# addresses and redirects keep https. 0 when gunicorn is reached directly.
PROXIES_ENV = "PORTAL_TRUSTED_PROXIES"


def create_server_app(config: dict[str, Any] | None = None) -> Flask:
    """The portal in server mode, behind `PORTAL_TRUSTED_PROXIES` (default 1) reverse proxies."""
    app = create_app({**(config or {}), "MODE": "server"})
    _log_to_stderr(app.config["PORTAL"]["LOG_LEVEL"])
    proxies = int(os.environ.get(PROXIES_ENV, "1"))
    if proxies > 0:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )
    return app


def _log_to_stderr(level: str) -> None:
    """The portal's own log lines go to stderr as JSON, one object per line, each with the
    request id (journald keeps them; a log shipper can parse them as they are)."""
    from portal.operations.logs import JsonFormatter, RequestIdFilter

    logger = logging.getLogger("portal")
    logger.setLevel(level.upper())
    if not any(isinstance(handler, _ServerLogHandler) for handler in logger.handlers):
        handler = _ServerLogHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.addFilter(RequestIdFilter())
        logger.addHandler(handler)


class _ServerLogHandler(logging.StreamHandler[TextIO]):
    """The handler added above (so that building a second app does not add another)."""
