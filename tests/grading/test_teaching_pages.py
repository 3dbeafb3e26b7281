"""Every teaching route answers each role it allows with exactly the status its case states."""

from __future__ import annotations

import pytest

from portal.extensions import db as _db
from portal.models import ROLES
from tests.attendance.rbac_cases import CASES as ATTENDANCE
from tests.auth.test_rbac_matrix import _login, _request, build_world
from tests.grading.rbac_cases import CASES as GRADING
from tests.submissions.rbac_cases import CASES as SUBMISSIONS

TEACHING = {**GRADING, **ATTENDANCE, **SUBMISSIONS}


@pytest.mark.parametrize("role", ROLES)
def test_teaching_pages_render_for_allowed_roles(app, role):
    with app.app_context():
        world = build_world(_db.session)
        _db.session.commit()
        username = world["users"][role].username
    client = _login(app, username)
    problems = []
    for endpoint, case in TEACHING.items():
        if not case.allows(role):
            continue
        response = _request(client, case, world)
        if response.status_code != case.expected_status(role):
            problems.append(
                f"{endpoint} as {role}: {response.status_code}, "
                f"expected {case.expected_status(role)}"
            )
    assert problems == []
