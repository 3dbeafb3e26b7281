"""Long unbroken text (a 200-character name, a 50-character room) never breaks a layout."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.models import User
from tests import factories
from tests.browser.conftest import login_page, save_screenshot

pytestmark = pytest.mark.browser

LONG_NAME = "Wolfeschlegelsteinhausenbergerdorff" * 6  # 210 characters, no space
LONG_ROOM = "R" * 50
LONG_TITLE = "Supercalifragilisticexpialidocious" * 5  # 170 characters


@pytest.fixture(scope="module")
def long_texts(live_server):
    with live_server.session() as db:
        instructor = db.scalar(select(User).where(User.username == "instructor"))
        term = factories.make_term(db, code="LONG-T", name="Long term")
        course = factories.make_course(db, code="LONG1", title=LONG_TITLE[:200])
        section = factories.make_section(db, course=course, term=term, instructor_id=instructor.id)
        section.room = LONG_ROOM
        student = factories.make_user(db, "student", full_name=LONG_NAME[:200])
        factories.enrol(db, student, section)
        factories.make_assessment(db, section, name="Lab " + "X" * 150, kind="lab", weight=100)
        factories.make_lab_session(db, section)
        return {"section": section.id, "student": student.id}


def _pages(ids):
    section = ids["section"]
    return [
        ("admin", "/admin/users/?q=wolfe"),
        ("admin", f"/admin/users/{ids['student']}/edit"),
        ("admin", f"/admin/sections/{section}"),
        ("admin", f"/students/{ids['student']}/transcript"),
        ("admin", "/courses?term=LONG-T"),
        ("instructor", "/"),
        ("instructor", f"/sections/{section}"),
        ("instructor", f"/sections/{section}/gradebook"),
        ("instructor", f"/sections/{section}/attendance"),
        ("instructor", f"/sections/{section}/submissions"),
    ]


@pytest.mark.parametrize("width", [1280, 400])
def test_long_names_and_rooms_wrap_instead_of_widening_pages(
    browser, live_server, long_texts, width
):
    wide = []
    for role in ("admin", "instructor"):
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": width, "height": 900}
        )
        page = context.new_page()
        try:
            login_page(page, role)
            for who, path in _pages(long_texts):
                if who != role:
                    continue
                response = page.goto(path)
                assert response is not None and response.status == 200, path
                extra = page.evaluate(
                    "() => document.documentElement.scrollWidth"
                    " - document.documentElement.clientWidth"
                )
                name = path.split("?")[0].strip("/").split("/")
                save_screenshot(page, f"long-text-{width}-{role}-{'-'.join(name[:1] + name[2:])}")
                if extra > 0:
                    wide.append(f"{path} (+{extra}px)")
        finally:
            context.close()
    assert wide == [], f"pages wider than {width} px with long text: {wide}"


def test_column_headings_break_between_words_only(browser, live_server):
    """The wrapping that keeps long names inside their cards must not split a heading such as
    "Waitlist" into "Waitli" and "st" on the dashboard's narrow tables."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        login_page(page, "admin")
        page.goto("/admin/")
        split = page.evaluate(
            """() => [...document.querySelectorAll('.card-body thead th')]
                .filter(th => !/\\s/.test(th.textContent.trim()))
                .filter(th => {
                    const range = document.createRange();
                    range.selectNodeContents(th);
                    const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
                    return lines.size > 1;
                })
                .map(th => th.textContent.trim())"""
        )
        assert split == [], f"headings split inside a word: {split}"
    finally:
        context.close()
