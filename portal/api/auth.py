"""Who is calling the API: a personal token, or the browser session.

- `Authorization: Bearer cpt_...`: the token's owner, for this request only. The session cookie
  is not read and no session is written; CSRF does not apply (a browser never adds this header on
  its own). An unknown, expired or revoked token is 401, even with a valid session cookie.
- Otherwise the browser session (Flask-Login), with the CSRF token in the X-CSRFToken header on
  every state-changing call (the same token as the pages' forms).

The access policy (portal/auth/policy.py) then decides, the same as for the pages; anonymous API
callers get 401 instead of the log-in redirect. Tokens are accepted under /api only.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask, g, request
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from portal.api.common import session
from portal.api.problems import is_api_request
from portal.extensions import csrf, login_manager
from portal.profile.services import authenticate_token

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REALM = "Campus Portal"


def _refuse(description: str, error: str | None = "invalid_token") -> Unauthorized:
    parameters: dict[str, str | None] = {"realm": REALM}
    if error:
        parameters["error"] = error
    return Unauthorized(
        description=description, www_authenticate=WWWAuthenticate("bearer", parameters)
    )


def authenticate_api_request() -> None:
    if not is_api_request():
        return
    header = request.headers.get("Authorization")
    if header is None:
        g.api_auth = "session"
        if request.method not in SAFE_METHODS and current_user.is_authenticated:
            csrf.protect()  # the pages' CSRF token, sent as X-CSRFToken
        return
    scheme, _space, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise _refuse(_("Send the token as 'Authorization: Bearer cpt_...'."), "invalid_request")
    user = authenticate_token(session, credentials.strip(), now=datetime.now(UTC))
    session.commit()  # the token's last-used time, whatever the request does next
    if user is None:
        raise _refuse(_("The API token is unknown, expired or revoked."))
    # This request's user, without reading or writing the session (Flask-Login keeps the
    # current user in g; login_user would also store it in the session cookie).
    login_manager._update_request_context_with_user(user)
    g.api_auth = "token"


def authenticated_by() -> str:
    return str(g.get("api_auth", "session"))


def init_app(app: Flask) -> None:
    # Registered before the access policy's hooks (portal/__init__.py registers blueprints
    # first), so that the policy sees the token's user.
    app.before_request(authenticate_api_request)
