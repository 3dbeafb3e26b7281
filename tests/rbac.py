"""The RBAC matrix: every route, for every role and for anonymous visitors.

Each feature lists its routes in `tests/<feature>/rbac_cases.py`:

    CASES = {"feature.endpoint": Case("GET", "/path/{section_id}", {"admin"})}

and may define `setup(db, world)` to add the objects its URLs need to `world` (a dict of ids).
The test fails when a registered route has no case, or a case names no route. A case with
`status` must answer exactly that to the roles it allows; under /api every refusal is exact too:
401 for anonymous callers, 403 for other roles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES = ("student", "instructor", "lab_staff", "admin")
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
    status: int | None = None  # the exact status for the roles allowed (None: not 401/403)
    json: dict[str, Any] | None = None  # a JSON body (API); "{key}" strings come from the world

    def allows(self, role: str) -> bool:
        return role in self.allowed
