"""The API's registration, its OpenAPI document and its docs page.

/api/v1/openapi.json   the OpenAPI 3 document (public: it describes, it holds no data)
/api/v1/docs           Swagger UI from the portal's own static files (no CDN), which calls
                       the API with the browser session and its CSRF token
"""

from __future__ import annotations

import hashlib

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    render_template,
    request,
    session,
)

from portal.api import API_V1, auth
from portal.api.json_provider import OrjsonProvider
from portal.api.problems import is_api_request
from portal.api.spec import SETTINGS, api
from portal.auth.policy import public
from portal.extensions import csrf, limiter

bp = Blueprint("api", __name__, url_prefix=API_V1)


@bp.get("/openapi.json")
@public
def openapi() -> Response:
    return jsonify(api.document())


@bp.get("/docs")
@public
def docs() -> str:
    return render_template("api/docs.html")


def _conditional_get(response: Response) -> Response:
    """Every JSON answer to a GET under /api gets an ETag; If-None-Match that still matches
    gets 304 Not Modified (no body). Clients may keep answers but must revalidate them."""
    if (
        request.method in ("GET", "HEAD")
        and is_api_request()
        and response.status_code == 200
        and response.mimetype == "application/json"
        and not response.direct_passthrough
    ):
        response.add_etag()
        response.headers["Cache-Control"] = "private, no-cache"
        response.make_conditional(request)
    return response


def _caller_key() -> str:
    """Rate limits count per token, else per signed-in user of a browser session, else per
    address (a campus NAT puts many people behind one address). Not the session cookie itself:
    it changes whenever the session does, and each new cookie would start a new count."""
    credential = request.headers.get("Authorization") or session.get("_user_id")
    if credential:
        return "api:" + hashlib.sha256(credential.encode("utf-8", "replace")).hexdigest()[:32]
    return "api-addr:" + (request.remote_addr or "unknown")


def _api_rate_limit() -> str:
    return str(current_app.config["PORTAL"]["API_RATE_LIMIT"])


def init_app(app: Flask) -> None:
    from portal.api import admin, attendance, catalogue, grades, registrations, submissions

    app.json = OrjsonProvider(app)
    app.config.update(SETTINGS)
    api.init_app(app)
    auth.init_app(app)
    for module in (catalogue, registrations, grades, attendance, submissions, admin):
        csrf.exempt(module.blp)  # token calls need none; session calls are checked in auth.py
        limiter.limit(_api_rate_limit, key_func=_caller_key)(module.blp)
        api.register_blueprint(module.blp)
    app.register_blueprint(bp)
    app.after_request(_conditional_get)
