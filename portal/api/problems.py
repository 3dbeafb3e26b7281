"""RFC 9457 problem details: every error under /api has this one shape.

    {"type": "urn:campus-portal:problem:registration-refused", "title": "Registration refused",
     "status": 409, "detail": "CS101-001 is full and its waitlist is full too (0 places).",
     "instance": "/api/v1/me/registrations", "request_id": "...",
     "errors": [{"location": "json", "field": "section_id", "message": "Not a valid UUID."}]}

`type` is `about:blank` when the status code says it all (then `title` is the status phrase).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from typing import Any

from flask import Response, g, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.api import field_messages
from portal.errors import (
    Busy,
    Forbidden,
    NotFound,
    PortalError,
    RegistrationError,
    ValidationError,
)

CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:campus-portal:problem:"

# Domain errors (portal/errors.py and the features' own subclasses): type slug and title.
# The titles are translated when a problem is made, in the request's language (Accept-Language).
_DOMAIN_TYPES: list[tuple[type[PortalError], str, str]] = [
    (RegistrationError, "registration-refused", _l("Registration refused")),
    (NotFound, "not-found", _l("Not found")),
    (Forbidden, "forbidden", _l("Not allowed")),
    (ValidationError, "invalid-value", _l("Invalid value")),
    (Busy, "busy", _l("Busy: try again")),
]

# The status phrases (the title of an `about:blank` problem, RFC 9457 4.2.1: "MAY be localized
# to suit client preferences"), in English as http.HTTPStatus says them.
STATUS_TITLES = {
    400: _l("Bad Request"),
    401: _l("Unauthorized"),
    403: _l("Forbidden"),
    404: _l("Not Found"),
    405: _l("Method Not Allowed"),
    406: _l("Not Acceptable"),
    409: _l("Conflict"),
    410: _l("Gone"),
    413: _l("Request Entity Too Large"),
    415: _l("Unsupported Media Type"),
    422: _l("Unprocessable Entity"),
    428: _l("Precondition Required"),
    429: _l("Too Many Requests"),
    500: _l("Internal Server Error"),
    502: _l("Bad Gateway"),
    503: _l("Service Unavailable"),
    507: _l("Insufficient Storage"),
}


def status_title(status: int) -> str:
    """The status phrase of `status` in the request's language."""
    if status in STATUS_TITLES:
        return str(STATUS_TITLES[status])
    if status in HTTPStatus._value2member_map_:
        return HTTPStatus(status).phrase
    return _("Error")


def is_api_request() -> bool:
    from portal.api import API_PREFIX

    return request.path.startswith(API_PREFIX)


def field_errors(messages: Any, location: str = "json") -> list[dict[str, str]]:
    """Flatten marshmallow/webargs messages ({"json": {"field": ["msg"]}}) or a service's
    {field: message} into a list of {location, field, message}."""
    return list(_flatten(messages, location, ""))


def _flatten(messages: Any, location: str, prefix: str) -> Iterator[dict[str, str]]:
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            yield from _flatten(value, location, name)
    elif isinstance(messages, list | tuple):
        for item in messages:
            yield from _flatten(item, location, prefix)
    else:
        message = field_messages.translated(str(messages))
        yield {"location": location, "field": prefix or "_body", "message": message}


def problem(
    status: int,
    *,
    title: str | None = None,
    detail: str = "",
    type_: str = "about:blank",
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    phrase = status_title(status)
    body: dict[str, Any] = {
        "type": type_,
        "title": str(title) if title and type_ != "about:blank" else phrase,
        "status": status,
        "detail": str(detail) or phrase,
        "instance": request.path,
    }
    if request_id := g.get("request_id"):
        body["request_id"] = request_id
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_domain_error(error: PortalError) -> Response:
    slug, title = "refused", _("Request refused")
    for kind, kind_slug, kind_title in _DOMAIN_TYPES:
        if isinstance(error, kind):
            slug, title = kind_slug, str(kind_title)
            break
    slug = getattr(error, "problem_type", slug)
    title = str(getattr(error, "problem_title", title))
    errors = None
    if isinstance(fields := getattr(error, "errors", None), dict):  # FieldErrors: {field: message}
        errors = field_errors(fields)
    retry_after = getattr(error, "retry_after", None)
    return problem(
        error.status_code,
        title=title,
        detail=str(error),
        type_=TYPE_PREFIX + slug,
        errors=errors,
        headers={"Retry-After": str(retry_after)} if retry_after else None,
    )


def validation_problem(messages: Any) -> Response:
    """422 for a request that does not match its schema (webargs' messages by location)."""
    errors: list[dict[str, str]] = []
    if isinstance(messages, Mapping):
        for location, by_field in messages.items():
            errors.extend(field_errors(by_field, str(location)))
    else:
        errors = field_errors(messages)
    return problem(
        422,
        title=_("Invalid request"),
        detail=_("The request has invalid or missing values; see errors."),
        type_=TYPE_PREFIX + "invalid-request",
        errors=errors,
    )
