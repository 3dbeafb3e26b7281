"""Campus Portal: the Flask application, one factory for the desktop and the campus server."""

from __future__ import annotations

import logging
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importing the package stays cheap: Flask is imported by create_app
    from flask import Flask, Response

__all__ = ["create_app", "__version__"]

try:
    __version__ = metadata.version("campus-portal")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

PACKAGE_DIR = Path(__file__).resolve().parent
MIGRATIONS_DIR = PACKAGE_DIR / "migrations"

log = logging.getLogger("portal")


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the portal. `config` holds explicit overrides (the highest layer of settings)."""
    from flask import Flask

    from portal import multipart
    from portal.config import flask_config, load_settings
    from portal.routing import LazyBuilderRule

    app = Flask(__name__, instance_relative_config=False)
    multipart.init_app(app)
    app.url_rule_class = LazyBuilderRule  # URL builders are compiled on first use
    settings = load_settings(config)
    app.config.from_mapping(flask_config(settings))
    # Anything else in `config` (Flask or extension settings, e.g. TESTING) goes in as it is.
    app.config.update({k: v for k, v in (config or {}).items() if k not in settings})
    app.config["VERSION"] = __version__

    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_security(app)
    register_request_logging(app)
    register_commands(app)
    register_template_helpers(app)
    return app


def register_extensions(app: Flask) -> None:
    from flask_babel import lazy_gettext

    from portal import database, i18n
    from portal.extensions import babel, csrf, db, limiter, login_manager

    database.install_sqlite_behaviour()
    babel.init_app(
        app,
        locale_selector=i18n.select_locale,
        timezone_selector=i18n.select_timezone,
        default_translation_directories=str(i18n.TRANSLATIONS),
    )
    db.init_app(app)
    database.register_migrations(app)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = lazy_gettext("Please log in to see that page.")
    login_manager.localize_callback = str  # flashed as text in the request's language
    login_manager.login_message_category = "info"

    # Changes to synchronised rows go to the change log (server) or the outbox (a device).
    from portal.sync import capture

    capture.install()
    app.before_request(_attribute_changes)
    with app.app_context():
        capture.register_engine(db.engine, app.config["PORTAL"]["MODE"])
        database.install_lock_wait(db.engine, app.config["PORTAL"]["LOCK_WAIT_SECONDS"])


def _attribute_changes() -> None:
    """Changes made in a request are the signed-in person's (the change log and the outbox
    record who made each one)."""
    from flask_login import current_user

    from portal.extensions import db
    from portal.sync import capture

    capture.attribute_to(db.session(), current_user.id if current_user.is_authenticated else None)


def register_blueprints(app: Flask) -> None:
    """Each feature's routes module holds its blueprint `bp`; the API registers its own with
    `init_app(app)`. Imported here, not at the top: importing the package stays cheap."""
    from portal.accounts import routes as accounts
    from portal.admin import routes as admin
    from portal.api import routes as api
    from portal.attendance import routes as attendance
    from portal.audit import routes as audit
    from portal.auth import routes as auth
    from portal.catalogue import routes as catalogue
    from portal.grading import routes as grading
    from portal.main import routes as main
    from portal.operations import routes as operations
    from portal.profile import routes as profile
    from portal.registration import routes as registration
    from portal.setup import routes as setup
    from portal.submissions import routes as submissions
    from portal.sync.device import routes as sync_device
    from portal.sync.device import sign_in_routes as campus_sign_in
    from portal.sync.server import admin_routes as sync_admin
    from portal.sync.server import routes as sync
    from portal.sync.server import sign_in_routes as device_sign_in
    from portal.updates import routes as updates

    for blueprint in (
        main.bp,
        auth.bp,
        accounts.bp,
        catalogue.bp,
        registration.bp,
        grading.bp,
        attendance.bp,
        submissions.bp,
        admin.bp,
        audit.bp,
        setup.bp,
        sync.bp,
        sync_admin.bp,
        sync_device.bp,
        device_sign_in.bp,
        campus_sign_in.bp,
        profile.bp,
    ):
        app.register_blueprint(blueprint)
    api.init_app(app)
    app.register_blueprint(operations.bp)
    app.register_blueprint(updates.bp)


def register_errorhandlers(app: Flask) -> None:
    from portal.main.errors import init_app

    init_app(app)


def register_security(app: Flask) -> None:
    from portal.auth.policy import init_app

    init_app(app)


def register_request_logging(app: Flask) -> None:
    """A request id for every request (X-Request-ID in and out), one access-log line per request
    with it, and on the central server Prometheus metrics (portal/operations)."""
    from flask import g, request

    from portal.operations import logs

    access_log = logging.getLogger("portal.requests")

    def _start_request() -> None:
        g.request_started = time.perf_counter()
        g.request_id = logs.request_id_from(request.headers.get(logs.HEADER))

    # First of all before-request hooks: a refusal by CSRF, a rate limit or the API's token check
    # already carries the request id.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_request)

    @app.after_request
    def _log_request(response: Response) -> Response:
        started = g.get("request_started")
        elapsed_ms = (time.perf_counter() - started) * 1000 if started else 0.0
        if request_id := g.get("request_id"):
            response.headers[logs.HEADER] = request_id
        if request.endpoint != "static":
            access_log.info(
                "%s %s %s %.1fms",
                request.method,
                request.path,
                response.status_code,
                elapsed_ms,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(elapsed_ms, 1),
                    "endpoint": request.endpoint,
                    "remote_addr": request.remote_addr,
                },
            )
        return response

    if app.config["PORTAL"]["MODE"] == "server":
        from portal.operations import metrics

        metrics.init_app(app)


def register_commands(app: Flask) -> None:
    from portal import database
    from portal.accounts import commands as account_commands
    from portal.demo import commands as demo_commands

    database.init_app(app)
    account_commands.init_app(app)
    demo_commands.init_app(app)


def register_template_helpers(app: Flask) -> None:
    from portal import i18n
    from portal.main.templating import init_app

    init_app(app)
    i18n.init_app(app)
