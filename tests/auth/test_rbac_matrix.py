"""Every route × every role gets exactly the access the matrix says; no route is missing."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

import pytest

import tests
from portal.extensions import db as _db
from tests import factories
from tests.conftest import csrf_token
from tests.rbac import ANONYMOUS, ROLES, Case

TESTS_DIR = Path(tests.__file__).parent


def _feature_modules() -> list[Any]:
    modules = []
    for info in pkgutil.iter_modules([str(TESTS_DIR)]):
        if info.ispkg and (TESTS_DIR / info.name / "rbac_cases.py").exists():
            modules.append(importlib.import_module(f"tests.{info.name}.rbac_cases"))
    return modules


def all_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for module in _feature_modules():
        for endpoint, case in module.CASES.items():
            assert endpoint not in cases, f"{endpoint} is listed twice"
            cases[endpoint] = case
    return cases


def build_world(db: Any) -> dict[str, Any]:
    """The users whose sessions make the requests, and objects they own."""
    users = {role: factories.make_user(db, role) for role in ROLES}
    section = factories.make_section(
        db, instructor_id=users["instructor"].id, lab_staff_id=users["lab_staff"].id
    )
    other_section = factories.make_section(db, term=section.term)
    from portal.registration.services import register

    registration = register(db, users["student"], section, now=factories.now())
    world: dict[str, Any] = {
        "users": users,
        "section_id": section.id,
        "other_section_id": other_section.id,
        "course_code": section.course.code,
        "registration_id": registration.id,
        "other_user_id": factories.make_user(db, "student").id,
        "term_id": section.term.id,
        "course_id": section.course.id,
    }
    for module in _feature_modules():
        if hasattr(module, "setup"):
            module.setup(db, world)
    return world


def test_every_route_has_a_case(app):
    routes = {rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint != "static"}
    cases = set(all_cases())
    assert routes - cases == set(), "routes without an RBAC case: add them to rbac_cases.py"
    assert cases - routes == set(), "RBAC cases for routes that do not exist"


def _login(app, username: str):
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(
        "/login", data={"csrf_token": token, "username": username, "password": factories.PASSWORD}
    )
    assert response.status_code == 302, f"log-in of {username} failed"
    return client


def _fill(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


def _request(client, case: Case, world: dict[str, Any]):
    values = {k: v for k, v in world.items() if k != "users"}
    path = case.path.format(**values)
    if case.method == "GET":
        return client.get(path)
    token = csrf_token(client, "/login")
    if case.json is not None:
        return client.open(
            path, method=case.method, json=_fill(case.json, values), headers={"X-CSRFToken": token}
        )
    if case.path.startswith("/api/"):
        return client.open(path, method=case.method, headers={"X-CSRFToken": token})
    return client.open(path, method=case.method, data={"csrf_token": token, **case.data})


@pytest.mark.parametrize("role", [ANONYMOUS, *ROLES])
def test_rbac_matrix(app, role):
    with app.app_context():
        world = build_world(_db.session)
        _db.session.commit()
        usernames = {r: u.username for r, u in world["users"].items()}
    client = app.test_client() if role == ANONYMOUS else _login(app, usernames[role])
    cases = sorted(all_cases().items(), key=lambda item: item[1].ends_session)
    failures = []
    for endpoint, case in cases:
        response = _request(client, case, world)
        location = response.headers.get("Location", "")
        sent_to_login = response.status_code == 302 and "/login" in location
        if case.allows(role):
            ok = response.status_code == case.expected_status(role) and not (
                sent_to_login and endpoint != "auth.logout"
            )
        elif case.path.startswith("/api/"):
            ok = response.status_code == (401 if role == ANONYMOUS else 403)
        elif role == ANONYMOUS:
            ok = sent_to_login
        else:
            ok = response.status_code == 403
        if not ok:
            expected = case.expected_status(role) if case.allows(role) else "403 or log-in"
            failures.append(
                f"{endpoint} {case.method} as {role}: {response.status_code} {location} "
                f"(expected {expected})"
            )
    assert failures == []
