"""URL builders compiled on first use (portal/routing.py): the same URLs as Werkzeug's own."""

from __future__ import annotations

import uuid

from flask import Flask, url_for
from werkzeug.routing import Map, Rule

from portal.routing import LazyBuilderRule

# A value for each kind of converter the portal's rules use (a test fails on a new kind).
SAMPLES = {
    "UnicodeConverter": "CS100 intro/ü",
    "PathConverter": "reports/lab 1.pdf",
    "UUIDConverter": uuid.UUID("0b5c3c8e-7f0a-4d7e-9a51-3f4c2a1d9e77"),
}


def _values(rule: Rule) -> dict[str, object]:
    return {name: SAMPLES[type(c).__name__] for name, c in rule._converters.items()}


def test_a_started_portal_has_compiled_no_url_builder(app: Flask) -> None:
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"]
    assert len(rules) > 100
    assert all(isinstance(rule, LazyBuilderRule) for rule in rules)
    assert all(rule._build.__name__ == "build_first" for rule in rules)


def test_every_url_is_built_as_werkzeug_builds_it(app: Flask) -> None:
    rules = list(app.url_map.iter_rules())
    eager = Map(
        [Rule(rule.rule, endpoint=rule.endpoint, methods=rule.methods) for rule in rules],
        converters=app.url_map.converters,
    ).bind("portal.test")
    with app.test_request_context():
        for rule in rules:
            values = _values(rule)
            for extra in ({}, {"page": 2, "q": "a&b c"}):  # with and without a query string
                assert url_for(rule.endpoint, **values, **extra) == eager.build(
                    rule.endpoint, {**values, **extra}
                ), rule.rule
        # Built once, the compiled builder is kept.
        some = next(rule for rule in rules if rule.endpoint == "auth.login")
        assert some._build_unknown.__name__ != "build_first"
