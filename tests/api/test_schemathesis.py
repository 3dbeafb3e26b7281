"""Schemathesis against the served OpenAPI document: every operation, with generated requests,
called as each role (and anonymously). Bounded: a few examples per operation.

Checked for every answer: no 5xx; the status is one the document lists for the operation (the
default problem response covers the refusals); the body matches the schema of that status; the
content type and the documented headers match."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import ROLES, build_api_world
from tests.conftest import make_app

EXAMPLES_PER_OPERATION = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory):
    tmp_path: Path = tmp_path_factory.mktemp("schemathesis")
    app = make_app(
        tmp_path,
        f"sqlite:///{tmp_path / 'fuzz.db'}",
        API_RATE_LIMIT="1000000 per minute",
    )
    world = build_api_world(app)
    return app, world


def test_every_operation_answers_within_its_schema_for_every_role(fuzzed_app):
    app, world = fuzzed_app
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    served = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api_")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert len(operations) == len(served), "every API route is in the document"
    failures: list[str] = []
    calls = 0

    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case) -> None:  # type: ignore[no-untyped-def]
            nonlocal calls
            for role in (None, *ROLES):
                headers = {"Authorization": f"Bearer {world.tokens[role]}"} if role else {}
                calls += 1
                case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except Exception as error:  # one operation's failure must not hide the others'
            failures.append(f"{operation.method.upper()} {operation.path}: {error}")
    assert failures == []
    assert calls >= len(operations) * len(ROLES)
