"""The OpenAPI document is built when it is first asked for, not when the portal starts."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from portal.api.spec import api


def test_a_start_prepares_no_error_response_for_the_document(app: Flask) -> None:
    # flask-smorest would convert the problem schema for each of the ~60 HTTP statuses here.
    assert api.spec.components.responses_lazy == {}


def test_the_document_describes_errors_as_problem_details(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    register = document["paths"]["/api/v1/me/registrations"]["post"]["responses"]
    assert register["422"] == {"$ref": "#/components/responses/UNPROCESSABLE_ENTITY"}
    assert register["default"] == {"$ref": "#/components/responses/DEFAULT_ERROR"}
    responses = document["components"]["responses"]
    for name in ("UNPROCESSABLE_ENTITY", "CONFLICT", "DEFAULT_ERROR"):
        assert responses[name]["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    assert "Problem" in document["components"]["schemas"]
    # Asked for again, the same document.
    assert client.get("/api/v1/openapi.json").get_json() == document
