"""Every teaching route answers without a server error for each role it allows."""

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
        if response.status_code >= 500 or response.status_code in (401, 403):
            problems.append(f"{endpoint} as {role}: {response.status_code}")
    assert problems == []
