"""Who may reach what: every view declares its access, and one hook enforces it.

A view with no declaration is refused (deny by default), so a forgotten decorator fails closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, logout_user
from werkzeug.wrappers import Response as BaseResponse

from portal.api import API_PREFIX
from portal.extensions import login_manager
from portal.languages import N_
from portal.models import ROLES, utcnow

F = TypeVar("F", bound=Callable[..., Any])
ACCESS_ATTRIBUTE = "portal_access"
PASSIVE_ATTRIBUTE = "portal_passive"
PUBLIC = "public"
SIGNED_IN = "signed-in"
EXEMPT_ENDPOINTS = {"static"}
IDLE_MESSAGE = N_("You were logged out after a period of inactivity.")
PASSWORD_CHANGE_ENDPOINTS = {"auth.change_own_password", "auth.logout"}
LAST_SEEN_STEP_SECONDS = 60  # the idle log-out's granularity (_enforce_idle_logout)
# The roles that may work on a section (its own staff, by auth.access) and administrators.
STAFF = ("instructor", "lab_staff", "admin")

log = logging.getLogger(__name__)


def public(view: F) -> F:
    """Anyone may open this view, logged in or not."""
    setattr(view, ACCESS_ATTRIBUTE, PUBLIC)
    return view


def signed_in(view: F) -> F:
    """Any logged-in user, whatever the role."""
    setattr(view, ACCESS_ATTRIBUTE, SIGNED_IN)
    return view


def roles(*names: str) -> Callable[[F], F]:
    """Only users holding one of these roles."""
    unknown = set(names) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}")

    def decorate(view: F) -> F:
        setattr(view, ACCESS_ATTRIBUTE, frozenset(names))
        return view

    return decorate


def passive(view: F) -> F:
    """A request a page makes by itself (a status poll): it is not the person's activity, so
    it does not keep them signed in past the idle log-out."""
    setattr(view, PASSIVE_ATTRIBUTE, True)
    return view


def access_of(view: Callable[..., Any]) -> str | frozenset[str] | None:
    return getattr(view, ACCESS_ATTRIBUTE, None)


def is_safe_redirect(target: str | None) -> bool:
    """Only paths on this site: no scheme, no host, no protocol-relative `//host`."""
    if not target:
        return False
    parts = urlsplit(target)
    return (
        not parts.scheme
        and not parts.netloc
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
    )


def _enforce_access() -> BaseResponse | None:
    endpoint = request.endpoint
    if endpoint is None or endpoint in EXEMPT_ENDPOINTS:
        return None
    view = current_app.view_functions[endpoint]
    access = access_of(view)
    if access is None:
        log.error("route %s declares no access policy; refused", endpoint)
        abort(403)
    if access == PUBLIC:
        return None
    if not current_user.is_authenticated:
        if request.path.startswith(API_PREFIX):
            abort(401)  # an API client: a problem to act on, not a log-in page
        if request.headers.get("HX-Request") == "true":
            # A page's own request (an import's progress poll) after its session ended, e.g.
            # by the idle log-out: the whole page goes to the log-in screen, instead of the
            # log-in form being swapped into a piece of the page.
            response = Response(status=401)
            response.headers["HX-Redirect"] = url_for("auth.login")
            return response
        if endpoint == "main.index":  # the front door: no "please log in" scolding
            return redirect(url_for("auth.login"))
        return login_manager.unauthorized()
    if current_user.must_change_password and endpoint not in PASSWORD_CHANGE_ENDPOINTS:
        # A one-time password (CSV import, admin reset): choose one's own before anything else.
        return redirect(url_for("auth.change_own_password"))
    if access == SIGNED_IN:
        return None
    assert isinstance(access, frozenset)
    if current_user.role not in access:
        abort(403)
    return None


def _enforce_idle_logout() -> None:
    """Shared lab PCs: a portal user idle for too long is logged out."""
    if not current_user.is_authenticated or g.get("api_auth") == "token":
        return  # a token call has no session to time out (and must not start one)
    limit_minutes = current_app.config["PORTAL"]["IDLE_LOGOUT_MINUTES"]
    now = utcnow().timestamp()
    last_seen = session.get("last_seen")
    if limit_minutes > 0 and last_seen is not None and now - last_seen > limit_minutes * 60:
        logout_user()
        session.clear()
        flash(_(IDLE_MESSAGE), "info")
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and getattr(view, PASSIVE_ATTRIBUTE, False) and last_seen is not None:
        return
    if last_seen is None or now - last_seen >= LAST_SEEN_STEP_SECONDS:
        # At most once a minute: a changed session is signed and sent again as a cookie, which
        # would otherwise cost every request. So the log-out comes between `limit` minus one
        # minute and `limit` after the last activity.
        session["last_seen"] = now


def _security_headers(response: Response) -> Response:
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if current_app.config["PORTAL"]["MODE"] == "server":
        # Keeps other sites' windows from holding a reference to the portal's. On the desktop
        # the local guard adds it when the pages open in the user's own browser (headless); the
        # portal's own window goes without it (desktop/guard.py says why).
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app: Flask) -> None:
    import uuid

    from sqlalchemy import bindparam, select

    from portal.extensions import db, login_manager
    from portal.models import User

    # Built once: every signed-in request runs it, and building the select again (as
    # `session.get` does) was a fifth of loading the user.
    by_id = select(User).where(User.id == bindparam("user_id"))

    @login_manager.user_loader
    def _load_user(user_id: str) -> User | None:
        """The user of `<id>:<session version>` (User.get_id), while the version is current:
        a password change or reset raises it, which ends every older session."""
        identifier, _, version = user_id.partition(":")
        try:
            key = uuid.UUID(identifier)
        except ValueError:
            return None
        user = db.session.execute(by_id, {"user_id": key}).scalar_one_or_none()
        if user is None or not user.is_active or version != str(user.session_version):
            return None
        return user

    from portal.auth import login_queue, login_throttle

    login_queue.init_app(app)
    login_throttle.init_app(app)
    app.before_request(_enforce_idle_logout)
    app.before_request(_enforce_access)
    app.after_request(_security_headers)
