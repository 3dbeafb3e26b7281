"""axe-core on every main page, as each role sees it: no serious or critical violations.

Each page is also saved as tests/artifacts/a11y-<name>.png to be looked at.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal.models import Section, User

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def ids(live_server):
    """Ids the page URLs need, taken from the demo data."""
    with live_server.session() as db:
        section = db.scalars(select(Section).order_by(Section.capacity, Section.id)).first()
        student = db.scalar(select(User).where(User.username == "student"))
        return {
            "section": section.id,
            "course": section.course.code,
            "user": student.id,
        }


# (name, user or None for anonymous, path template, heading expected on the page)
PAGES = [
    ("login", None, "/login", "Log in to Campus Portal"),
    ("error-404-anonymous", None, "/no-such-page", "Not Found"),
    ("my-registrations", "student", "/registrations", "My registrations"),
    ("catalogue", "student", "/courses", "Course catalogue"),
    ("catalogue-no-results", "student", "/courses?q=zzzz-nothing", "Course catalogue"),
    ("course", "student", "/courses/{course}", None),
    ("section-student", "student", "/sections/{section}", None),
    ("error-404-student", "student", "/courses/NOPE999", "That could not be done"),
    ("error-403-student", "student", "/admin/users/", "Forbidden"),
    ("staff-home-instructor", "instructor", "/", "My sections"),
    ("staff-home-labstaff", "labstaff", "/", "My sections"),
    ("section-instructor", "instructor", "/sections/{section}", None),
    ("admin-home", "admin", "/", "Administration"),
    ("admin-users", "admin", "/admin/users/", "Users"),
    ("admin-users-filtered", "admin", "/admin/users/?role=student&q=stu", "Users"),
    ("admin-user-new", "admin", "/admin/users/new", None),
    ("admin-user-edit", "admin", "/admin/users/{user}/edit", None),
    ("admin-user-password", "admin", "/admin/users/{user}/password", None),
    ("admin-catalogue", "admin", "/courses", "Course catalogue"),
]


@pytest.mark.parametrize(
    ("name", "username", "path", "heading"), PAGES, ids=[page[0] for page in PAGES]
)
def test_page_has_no_serious_accessibility_problems(
    ids, page, login, screenshot, assert_accessible, name, username, path, heading
):
    if username:
        login(page, username)
    page.goto(path.format(**ids))
    level_one = page.get_by_role("heading", level=1)
    expect(level_one).to_have_count(1)
    if heading:
        expect(level_one).to_have_text(heading)
    screenshot(page, f"a11y-{name}")
    assert_accessible(page)


def test_form_with_errors_is_accessible(page, login, screenshot, assert_accessible):
    """Errors shown by each field are announced and linked to it."""
    login(page, "admin")
    page.goto("/admin/users/new")
    page.get_by_label("Username").fill("x")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".invalid-feedback, .alert-danger").first).to_be_visible()
    expect(page.get_by_label("Username")).to_have_value("x")  # typed input is kept
    screenshot(page, "a11y-admin-user-new-errors")
    assert_accessible(page)


def test_narrow_screen_catalogue(browser, live_server, login, screenshot, assert_accessible):
    """A phone-width window: the navigation collapses behind a labelled button."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844})
    try:
        small = context.new_page()
        login(small, "student")
        small.goto("/courses")
        toggle = small.get_by_role("button", name="Show navigation")
        expect(toggle).to_be_visible()
        screenshot(small, "a11y-narrow-catalogue", full_page=False)
        assert_accessible(small)
        toggle.click()
        expect(small.get_by_role("link", name="My registrations")).to_be_visible()
        screenshot(small, "a11y-narrow-navigation-open", full_page=False)
    finally:
        context.close()


def test_keyboard_skip_link_reaches_main_content(page, login):
    login(page, "student")
    page.goto("/courses")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()


def test_a_message_on_the_log_in_page_can_be_closed(page):
    """The log-in page loads Bootstrap's script only when it shows a message: that message's
    close button must still work."""
    page.goto("/login")
    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("do not match an active account")
    alert.get_by_role("button", name="Dismiss").click()
    expect(alert).to_have_count(0)
