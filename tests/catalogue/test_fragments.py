"""The catalogue's kept course entries (portal/catalogue/fragments.py): reused while nothing they
show has changed, never shown after a change, seat counts always fresh, one per language."""

from __future__ import annotations

from datetime import time

import pytest
from flask import template_rendered
from flask_babel import force_locale, get_timezone
from sqlalchemy import select, update

from portal.catalogue import fragments
from portal.catalogue.summaries import section_summaries
from portal.extensions import db as _db
from portal.models import Course, Meeting, Section, Term
from tests import factories
from tests.conftest import BOTH_DATABASES


@pytest.fixture(autouse=True)
def _nothing_kept():
    fragments.clear()
    yield
    fragments.clear()


def _seed(app) -> None:
    with app.app_context():
        term = factories.make_term(_db.session, code="2027-S", name="Spring 2027")
        course = factories.make_course(
            _db.session, code="PHY301", title="Quantum Mechanics", department="Physics"
        )
        factories.make_section(
            _db.session, course=course, term=term, capacity=2, meetings=[(0, "09:00", "10:30")]
        )
        _db.session.commit()


def _entries_rendered(app, client, path: str) -> tuple[str, int]:
    """The page, and how many course entries were rendered (not taken as kept) for it."""
    rendered: list[str] = []

    def _count(_sender, template, context, **_extra) -> None:
        rendered.append(template.name)

    with template_rendered.connected_to(_count, app):
        page = client.get(path)
    assert page.status_code == 200
    return page.get_data(as_text=True), rendered.count("catalogue/_entry.html")


def _change(app, statement) -> None:
    with app.app_context():
        _db.session.execute(statement.execution_options(synchronize_session=False))
        _db.session.commit()


@BOTH_DATABASES
def test_a_kept_entry_is_never_shown_after_what_it_shows_changed(app, client, login_as):
    _seed(app)
    login_as("student")
    path = "/courses?q=phy301&term=2027-S"
    page, rendered = _entries_rendered(app, client, path)
    assert "Section " in page and "Quantum Mechanics" in page and "2 of 2 seats left" in page
    assert rendered == 1
    page, rendered = _entries_rendered(app, client, path)
    assert rendered == 0 and "Quantum Mechanics" in page  # kept

    # Seats are never kept: a registration elsewhere shows at once.
    _change(app, update(Section).values(enrolled_count=1))
    page, rendered = _entries_rendered(app, client, path)
    assert rendered == 0 and "1 of 2 seats left" in page
    # Nor is a badge shown for other numbers than its own (each is kept by its numbers).
    for values, badge in (
        ({"capacity": 3}, "2 of 3 seats left"),
        ({"enrolled_count": 3, "waitlist_capacity": 2}, "Full · waitlist 0/2"),
        ({"waitlist_count": 1}, "Full · waitlist 1/2"),
        ({"waitlist_count": 2}, "Full · waitlist full"),
        ({"capacity": 2, "enrolled_count": 1, "waitlist_count": 0}, "1 of 2 seats left"),
    ):
        _change(app, update(Section).values(**values))
        page, rendered = _entries_rendered(app, client, path)
        assert rendered == 0 and badge in page, badge

    # Everything the entry shows is part of what it is kept by.
    changes = [
        (update(Course).values(title="Quantum Field Theory"), "Quantum Field Theory"),
        (update(Section).values(number="777"), "Section 777"),
        (update(Term).values(name="Spring term 2027"), "Spring term 2027"),
        (update(Meeting).values(starts_at=time(11, 0), ends_at=time(12, 15)), "11:00"),
    ]
    for statement, shown in changes:
        _change(app, statement)
        page, rendered = _entries_rendered(app, client, path)
        assert rendered == 1 and shown in page, shown

    with app.app_context():
        section = _db.session.scalars(select(Section)).one()
        factories.make_section(
            _db.session, course=section.course, term=section.term, meetings=[(2, "14:00", "15:00")]
        )
        _db.session.commit()
    page, rendered = _entries_rendered(app, client, path)
    assert rendered == 1 and "14:00" in page and page.count("Section ") == 2


def test_each_language_has_its_own_entry(app, login_as):
    _seed(app)
    with app.app_context():
        course = _db.session.scalars(select(Course)).one()
        sections = section_summaries(_db.session, [course])[course.id]
        with app.test_request_context("/courses"):
            english = fragments.entry_key(fragments.request_key(), course, sections, False)
            zone = str(get_timezone())  # the campus zone: the server's own when not set
            with force_locale("de"):
                german = fragments.entry_key(fragments.request_key(), course, sections, False)
    assert english != german
    assert english[0][:2] == ("en", zone)
