"""The API object (flask-smorest) and the OpenAPI 3 document it builds from the resources.

flask-smorest is used for what it does well here (blueprints documented from their marshmallow
schemas, request parsing and validation with webargs); its own error handler and doc pages are
left out: errors go through the portal's one handler (portal/main/errors.py, RFC 9457 problem
details under /api), and the docs page is served from local assets (portal/api/routes.py).
"""

from __future__ import annotations

import copy
import http
import threading
from typing import Any

from flask_smorest import Api
from flask_smorest.utils import prepare_response

from portal.api.schemas import ProblemSchema

PROBLEM_CONTENT_TYPE = "application/problem+json"

SETTINGS = {
    "API_TITLE": "Campus Portal API",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": None,  # no flask-smorest doc blueprint: see routes.py
    "API_SPEC_OPTIONS": {
        "info": {
            "description": (
                "The portal's resources as JSON. Authenticate with the browser session (state-"
                "changing calls then need the X-CSRFToken header) or with a personal API token "
                "made on your profile page: `Authorization: Bearer cpt_...`. Errors are RFC 9457 "
                "problem details. Lists are paged (`page`, `per_page`; links in the body and in "
                "the Link header). GET answers carry an ETag; send it back in If-None-Match to "
                "get 304 Not Modified when nothing changed."
            )
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer", "bearerFormat": "cpt_..."},
                "session": {"type": "apiKey", "in": "cookie", "name": "portal_session"},
            }
        },
        "security": [{"token": []}, {"session": []}],
    },
}


class PortalApi(Api):  # type: ignore[misc]
    """flask-smorest's Api, documenting the blueprints and the responses every operation shares
    when the document is first asked for rather than at start-up (the desktop starts without
    converting every schema)."""

    ERROR_SCHEMA = ProblemSchema

    def __init__(self) -> None:
        super().__init__()
        self._undocumented: list[tuple[Any, str, Any]] = []
        self._responses_documented = False
        self._documenting = threading.Lock()

    def init_app(self, app: Any, *, spec_kwargs: Any = None) -> None:
        self._undocumented = []
        self._responses_documented = False
        super().init_app(app, spec_kwargs=spec_kwargs)

    def register_blueprint(self, blp: Any, *, parameters: Any = None, **options: Any) -> None:
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        self._undocumented.append((blp, name, parameters))

    def _document_blueprints(self) -> None:
        with self._documenting:
            if not self._responses_documented:
                self._document_responses()
                self._responses_documented = True
            while self._undocumented:
                blp, name, parameters = self._undocumented.pop(0)
                blp.register_views_in_doc(
                    self, self._app, self.spec, name=name, parameters=parameters
                )
                self.spec.tag({"name": name, "description": blp.description})

    def _register_error_handlers(self) -> None:
        """The portal's own handler answers every error (problem details under /api)."""

    def _register_responses(self) -> None:
        """Called by flask-smorest at start-up: the responses wait for the document."""

    def _document_responses(self) -> None:
        """A problem-details response for every status, and the default error response."""
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_CONTENT_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Problem details (RFC 9457)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_CONTENT_TYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def document(self) -> dict[str, Any]:
        """The OpenAPI document, with what every GET shares: an ETag and 304 Not Modified."""
        self._document_blueprints()
        spec = copy.deepcopy(self.spec.to_dict())
        spec["components"].setdefault("headers", {})["ETag"] = {
            "description": "Version of the returned representation (send it in If-None-Match)",
            "schema": {"type": "string"},
        }
        for path in spec.get("paths", {}).values():
            operation = path.get("get")
            if operation is None or operation.pop("x-no-etag", False):
                continue
            parameters = operation.setdefault("parameters", [])
            parameters.append(
                {
                    "name": "If-None-Match",
                    "in": "header",
                    "required": False,
                    "description": "An ETag from an earlier answer: 304 when it still matches",
                    "schema": {"type": "string"},
                }
            )
            for status, response in operation.get("responses", {}).items():
                if status.startswith("2"):
                    response.setdefault("headers", {})["ETag"] = {
                        "$ref": "#/components/headers/ETag"
                    }
            operation["responses"]["304"] = {"description": "Not Modified"}
        return spec


api = PortalApi()
