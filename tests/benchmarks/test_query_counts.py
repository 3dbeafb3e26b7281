"""N+1 guard: each benchmarked page issues as many SQL queries with more data as with little.

Not a timing test: it counts the statements one request sends to the database, with the small
demo data and with a medium set that has more courses, sections, registrations and users per
page, and requires the two counts to be equal. Pages of later features join by adding a Page to
a bench module's PAGES and to BENCHMARKED_PAGES below.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from portal.demo.services import DEMO_PASSWORD, SIZES, DemoSize, generate
from portal.extensions import db as _db
from tests.benchmarks import bench_admin, bench_foundation, bench_teaching
from tests.benchmarks.harness import Page, QueryCounter
from tests.conftest import make_app, post_form

# More of everything than "small" (24 courses, 60 students): several result pages in the
# catalogue and the user list, more sections per course and registrations per student.
MEDIUM = DemoSize(
    students=1_500,
    instructors=30,
    lab_staff=10,
    courses=150,
    sections=300,
    registrations=9_000,
    teaching_every=10,
)
BENCHMARKED_PAGES: list[Page] = [*bench_foundation.PAGES, *bench_teaching.PAGES, *bench_admin.PAGES]


def _portal(tmp_path: Path, size: str) -> Flask:
    # One log-in per page and data size: more than the log-in rate limit allows a minute.
    app = make_app(tmp_path, LOGIN_RATE_LIMIT="10000 per minute")
    with app.app_context():
        generate(_db.session, size)
        _db.session.commit()
        _db.session.remove()
    return app


@pytest.fixture(scope="module")
def portals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Flask]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(SIZES, "medium", MEDIUM)  # a size for this test only
        apps = {
            size: _portal(tmp_path_factory.mktemp(f"queries-{size}"), size)
            for size in ("small", "medium")
        }
    yield apps
    for app in apps.values():
        with app.app_context():
            _db.session.remove()
            _db.engine.dispose()


def _statements(app: Flask, page: Page) -> tuple[int, list[str]]:
    """The SQL statements of one request for the page (after a first, warming request)."""
    client = app.test_client()
    response = post_form(client, "/login", {"username": page.username, "password": DEMO_PASSWORD})
    assert response.status_code == 302, f"log-in as {page.username} failed"
    with app.app_context():
        path = page.path(_db.session)
        _db.session.remove()
        counter = QueryCounter(_db.engine)
    with counter:
        assert client.get(path).status_code == 200, f"{path} did not answer 200"
        with counter.counting(keep_statements=True) as counted:
            response = client.get(path)
        assert response.status_code == 200
    return counted[0], counter.statements


@pytest.mark.parametrize("page", BENCHMARKED_PAGES, ids=[p.name for p in BENCHMARKED_PAGES])
def test_query_count_does_not_grow_with_the_data(portals: dict[str, Any], page: Page) -> None:
    small, small_sql = _statements(portals["small"], page)
    medium, medium_sql = _statements(portals["medium"], page)
    assert small == medium, (
        f"{page.name} issues {small} SQL statements with small data but {medium} with medium "
        "data (an N+1 query?). Medium data:\n" + "\n".join(s[:200] for s in medium_sql)
    )
    assert 0 < small < 30, f"{page.name} issues {small} statements:\n" + "\n".join(small_sql)
