"""The RBAC matrix: every route, for every role and for anonymous visitors.

Each feature lists its routes in `tests/<feature>/rbac_cases.py`:

    CASES = {"feature.endpoint": Case("GET", "/path/{section_id}", {"admin"})}

A role the case allows must get exactly `expect`: by default 200 for a GET and 302 for anything
else (the redirect after a change); a number for every allowed role, or {role: status} where
the roles differ. A role it does not allow gets 403, and an anonymous visitor is sent to log in.

Under /api a refusal is exact too: 401 for an anonymous caller, 403 for another role; `json`
sends a JSON body (its "{key}" strings filled from the world) with the CSRF header.

and may define `setup(db, world)` to add the objects its URLs need to `world` (a dict of ids).
The test fails when a registered route has no case, or a case names no route.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from portal.models import ROLES

ANONYMOUS = "anonymous"
PUBLIC = frozenset({ANONYMOUS, *ROLES})
SIGNED_IN = frozenset(ROLES)


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    allowed: frozenset[str] | set[str]
    data: dict[str, str] = field(default_factory=dict)
    ends_session: bool = False  # log-out: run last for each role
    expect: int | dict[str, int] | None = None  # the status of an allowed role (see above)
    json: dict[str, Any] | None = None  # a JSON body (the API)

    def allows(self, role: str) -> bool:
        return role in self.allowed

    def expected_status(self, role: str) -> int:
        """The exact status `role` (one the case allows) must get."""
        if isinstance(self.expect, dict):
            return self.expect[role]
        if self.expect is not None:
            return self.expect
        return 200 if self.method == "GET" else 302
