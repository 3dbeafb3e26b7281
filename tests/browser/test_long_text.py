"""Long unbroken text (a 200-character name, a 50-character room) never breaks a layout, at a
desktop width (1280 px) and a phone's (400 px): no page is wider than the window, nothing a
person needs is pushed off-screen, short words are not split letter by letter, and the top bar's
items never overlap.

Each page is saved as tests/artifacts/long-text-<width>-<role>-<page>.png to be looked at."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from portal.models import User
from tests import factories
from tests.browser.conftest import live_portal_app, login_page, save_screenshot, serve

pytestmark = pytest.mark.browser

LONG_NAME = "Wolfeschlegelsteinhausenbergerdorff" * 6  # 210 characters, no space
LONG_ROOM = "R" * 50
LONG_TITLE = "Supercalifragilisticexpialidocious" * 5  # 170 characters
LONG_ASSESSMENT = "Laboratoriumsuebungsprotokollbewertung" * 6  # 228 characters, no space
WIDTHS = (1280, 400)

# Visible elements reaching past the window's edges, inside a scroll box or not (a column
# scrolled out of sight is as lost as one past the page's edge). Hidden ones (display: none,
# visually-hidden 1px boxes) have no size and are left out.
# An element inside a visually-hidden box (1 px, clipped: a stacked table's headings) is not seen.
INSIDE_HIDDEN_BOX = """const insideHiddenBox = (el) => {
    for (let up = el.parentElement; up; up = up.parentElement) {
        const box = up.getBoundingClientRect();
        if (box.width <= 1 || box.height <= 1) return true;
    }
    return false;
};"""

OFF_SCREEN = (
    """() => {
    """
    + INSIDE_HIDDEN_BOX
    + """
    const width = document.documentElement.clientWidth;
    const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
        + [...el.classList].slice(0, 2).map((c) => '.' + c).join('');
    const found = [];
    for (const el of document.querySelectorAll('body *')) {
        const box = el.getBoundingClientRect();
        if (box.width <= 1 || box.height <= 1 || insideHiddenBox(el)) continue;
        if (getComputedStyle(el).visibility === 'hidden') continue;
        if (box.right > width + 1 || box.left < -1) {
            found.push(`${name(el)} "${el.textContent.trim().slice(0, 30)}"`
                + ` from ${Math.round(box.left)} to ${Math.round(box.right)} px`);
        }
    }
    return found.slice(0, 8);
}"""
)

# Words of up to 24 letters (a username, "Waitlist", a status) laid out on more than one line.
SPLIT_WORDS = (
    """() => {
    """
    + INSIDE_HIDDEN_BOX
    + """
    const split = [];
    const walker = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const parent = node.parentElement;
        if (!parent || parent.closest('.visually-hidden, option, script, style')) continue;
        if (insideHiddenBox(parent)) continue;
        for (const match of node.textContent.matchAll(/[^\\s\u2013-]+/g)) {
            if (match[0].length < 3 || match[0].length > 24) continue;
            const range = document.createRange();
            range.setStart(node, match.index);
            range.setEnd(node, match.index + match[0].length);
            const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0)
                .map((r) => Math.round(r.top)));
            if (tops.size > 1) split.push(match[0]);
        }
    }
    return [...new Set(split)].slice(0, 8);
}"""
)


@pytest.fixture(scope="module")
def long_texts(live_server):
    with live_server.session() as db:
        instructor = db.scalar(select(User).where(User.username == "instructor"))
        demo_student = db.scalar(select(User).where(User.username == "student"))
        term = factories.make_term(db, code="LONG-T", name="Long term")
        course = factories.make_course(db, code="LONG1", title=LONG_TITLE[:200])
        section = factories.make_section(db, course=course, term=term, instructor_id=instructor.id)
        section.room = LONG_ROOM
        student = factories.make_user(db, "student", full_name=LONG_NAME[:200])
        factories.enrol(db, student, section)
        factories.enrol(db, demo_student, section)
        assessment = factories.make_assessment(
            db, section, name=LONG_ASSESSMENT[:200], kind="lab", weight=100
        )
        factories.make_lab_session(db, section)
        return {"section": section.id, "student": student.id, "assessment": assessment.id}


def _pages(ids):
    """(role, path, whole): `whole` pages show all of their content within the window; the
    others may scroll a wide table sideways (the gradebook, the attendance sheet)."""
    section = ids["section"]
    return [
        ("admin", "/admin/users/?q=wolfe", False),
        ("admin", f"/admin/users/{ids['student']}/edit", True),
        ("admin", f"/admin/sections/{section}", False),
        ("admin", f"/students/{ids['student']}/transcript", False),
        ("admin", "/courses?term=LONG-T", True),
        ("admin", "/admin/audit/", True),
        ("instructor", "/", False),
        ("instructor", f"/sections/{section}", True),
        ("instructor", f"/sections/{section}/gradebook", False),
        ("instructor", f"/sections/{section}/attendance", False),
        ("instructor", f"/sections/{section}/submissions", False),
        ("instructor", f"/sections/{section}/assessments", True),
        ("instructor", f"/assessments/{ids['assessment']}/edit", True),
        ("student", "/registrations", True),
        ("student", "/courses/LONG1", True),
        ("student", f"/sections/{section}", True),
    ]


@pytest.mark.parametrize("width", WIDTHS)
def test_long_names_and_rooms_wrap_instead_of_widening_pages(
    browser, live_server, long_texts, width
):
    problems = []
    for role in ("admin", "instructor", "student"):
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": width, "height": 900}
        )
        page = context.new_page()
        try:
            login_page(page, role)
            for who, path, whole in _pages(long_texts):
                if who != role:
                    continue
                response = page.goto(path)
                assert response is not None and response.status == 200, path
                name = path.split("?")[0].strip("/").split("/")
                save_screenshot(page, f"long-text-{width}-{role}-{'-'.join(name[:1] + name[2:])}")
                extra = page.evaluate(
                    "() => document.scrollingElement.scrollWidth - window.innerWidth"
                )
                if extra > 0:
                    problems.append(f"{path}: the page is {extra} px wider than the window")
                if whole and (off_screen := page.evaluate(OFF_SCREEN)):
                    problems.append(f"{path}: off-screen: {off_screen}")
                if split := page.evaluate(SPLIT_WORDS):
                    problems.append(f"{path}: words split across lines: {split}")
        finally:
            context.close()
    assert problems == [], f"at {width} px:\n" + "\n".join(problems)


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


@pytest.fixture(scope="module")
def central_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A portal in server mode, where an administrator's top bar also holds "Sync"."""
    app = live_portal_app(tmp_path_factory.mktemp("central"), MODE="server")
    with serve(app) as url:
        yield url


# The top bar's items as a person sees them: the text of each link (a link's padding is part of
# the gap between two of them), the name with its role badge, the buttons.
TOP_BAR_ITEMS = """() => {
    const bar = document.querySelector('nav[aria-label="Main"]');
    // The box of an element's own visible text (not of a visually-hidden addition).
    const textBox = (el) => {
        const node = [...el.childNodes].find((n) => n.nodeType === 3 && n.textContent.trim());
        const range = document.createRange();
        range.selectNodeContents(node || el);
        return range.getBoundingClientRect();
    };
    const items = [
        ...[...bar.querySelectorAll('.navbar-brand, .nav-link, #nav-links > div > a')]
            .map((el) => [el, textBox(el)]),
        ...[...bar.querySelectorAll('#nav-links > div > span, button')]
            .map((el) => [el, el.getBoundingClientRect()]),
    ];
    return items
        .filter(([el, b]) => b.width > 0 && b.height > 0 && el.offsetParent !== null)
        .map(([el, b]) => ({text: el.textContent.trim().replace(/\\s+/g, ' '),
                            left: b.left, right: b.right, top: b.top, bottom: b.bottom}));
}"""


def _overlapping(items: list[dict[str, Any]], gap: float) -> list[str]:
    """Pairs of items closer than `gap` px side by side on the same line (or overlapping)."""
    found = []
    for index, first in enumerate(items):
        for second in items[index + 1 :]:
            same_line = first["top"] < second["bottom"] and second["top"] < first["bottom"]
            nested = first["left"] <= second["left"] and second["right"] <= first["right"]
            if not same_line or nested:
                continue
            distance = max(second["left"] - first["right"], first["left"] - second["right"])
            if distance < gap:
                found.append(f"{first['text']!r} and {second['text']!r} ({distance:.0f} px)")
    return found


@pytest.mark.parametrize("width", (1440, 1280, 1024, 800, 400))
def test_the_admin_top_bar_on_the_central_server_keeps_its_items_apart(
    browser, central_server, width
):
    context = browser.new_context(base_url=central_server, viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        login_page(page, "admin")
        page.goto("/admin/")
        toggler = page.get_by_role("button", name="Show navigation")
        if toggler.is_visible():  # narrow: the items are behind the menu button
            toggler.click()
            page.locator("#nav-links.show").wait_for()
            page.locator("#nav-links:not(.collapsing)").wait_for()
        items = page.evaluate(TOP_BAR_ITEMS)
        save_screenshot(page, f"top-bar-central-admin-{width}", full_page=False)
        texts = " ".join(item["text"] for item in items)
        for expected in ("Sync", "Audit log", "Ada Admin Admin", "Log out"):
            assert expected in texts
        # At 1200-1399 px the password link gives way; the name leads to the profile page,
        # which has it.
        assert ("Password" in texts) is not (1200 <= width < 1400)
        outside = [item["text"] for item in items if item["right"] > width or item["left"] < 0]
        assert outside == [], f"past the window's edge at {width} px: {outside}"
        crowded = _overlapping(items, gap=8)
        assert crowded == [], f"top bar items touching at {width} px: {crowded}"
    finally:
        context.close()
