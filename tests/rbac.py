"""The RBAC matrix: every route, for every role and for anonymous visitors.

Each feature lists its routes in `tests/<feature>/rbac_cases.py`:

    CASES = {"feature.endpoint": Case("GET", "/path/{section_id}", {"admin"})}

and may define `setup(db, world)` to add the objects its URLs need to `world` (a dict of ids).
The test fails when a registered route has no case, or a case names no route.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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

    def allows(self, role: str) -> bool:
        return role in self.allowed
