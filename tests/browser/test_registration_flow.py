"""A student registers through the browser: search, enrol, waitlist, and promotion on a drop."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.demo.services import DEMO_PASSWORD
from portal.models import Registration, Section
from portal.registration import services
from tests.factories import make_course, make_section, make_term, make_user, now

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def arranged(live_server):
    """A summer term with two new courses: one with free seats, one whose only seat is taken."""
    with live_server.session() as db:
        term = make_term(db, state="open", code="SUM-X", name="Summer school")
        acoustics = make_course(
            db,
            code="OCE210",
            title="Marine Acoustics",
            department="Ocean Science",
            description="How sound travels under water, and what whales make of it.",
        )
        robotics = make_course(
            db, code="OCE320", title="Underwater Robotics", department="Ocean Science"
        )
        open_section = make_section(
            db, course=acoustics, term=term, capacity=25, waitlist_capacity=5,
            meetings=[(0, "09:00", "10:30"), (2, "09:00", "10:30")],
        )  # fmt: skip
        full_section = make_section(
            db, course=robotics, term=term, capacity=1, waitlist_capacity=3,
            meetings=[(1, "13:00", "15:00")],
        )  # fmt: skip
        holder = make_user(
            db, "student", password=DEMO_PASSWORD, username="rhea", full_name="Rhea Holder"
        )
        services.register(db, holder, full_section, now=now())
        return {
            "open_section": open_section.id,
            "full_section": full_section.id,
            "full_label": full_section.label,
        }


def _counts(live_server, section_id):
    with live_server.session() as db:
        section = db.get(Section, section_id)
        return section.enrolled_count, section.waitlist_count


def test_register_waitlist_and_promotion(
    live_server, arranged, page, new_page, login, screenshot, assert_accessible
):
    # 1. Log in: a student lands on their registrations.
    login(page, "student")
    expect(page.get_by_role("heading", name="My registrations")).to_be_visible()
    screenshot(page, "flow-01-my-registrations")

    # 2. Search the catalogue by a word of the title.
    page.get_by_role("link", name="Catalogue", exact=True).click()
    page.get_by_label("Code or title").fill("acoustics")
    page.get_by_label("Term").select_option(label="Summer school")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"/courses\?q=acoustics"))
    results = page.locator(".list-group-item")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("OCE210 · Marine Acoustics")
    expect(results.first).to_contain_text("25 of 25 seats left")
    screenshot(page, "flow-02-catalogue-search")
    assert_accessible(page)

    # 3. Open the course, then its section, and register.
    page.get_by_role("link", name="OCE210 · Marine Acoustics").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("OCE210 · Marine Acoustics")
    screenshot(page, "flow-03-course")
    page.locator("table").get_by_role("link").first.click()
    expect(page.get_by_role("button", name="Register")).to_be_visible()
    screenshot(page, "flow-04-section-before")
    page.get_by_role("button", name="Register").click()
    expect(page.locator(".alert-success")).to_contain_text("You are enrolled in OCE210-")
    expect(page.get_by_text("24 of 25 seats left")).to_be_visible()
    expect(page.get_by_role("button", name="Drop this section")).to_be_visible()
    screenshot(page, "flow-05-enrolled")
    assert _counts(live_server, arranged["open_section"]) == (1, 0)

    # 4. The robotics section is full: the student lands on its waitlist.
    page.goto("/courses?q=robotics&term=all")
    expect(page.locator(".list-group-item").first).to_contain_text("Full · waitlist 0/3")
    page.get_by_role("link", name=re.compile(r"Section \d+")).first.click()
    join = page.get_by_role("button", name="Join the waitlist")
    expect(join).to_be_visible()
    join.click()
    expect(page.locator(".alert-warning")).to_contain_text("you are on the waitlist at position 1")
    expect(page.get_by_text("(waitlist position 1)")).to_be_visible()
    screenshot(page, "flow-06-waitlisted")
    assert_accessible(page)
    assert _counts(live_server, arranged["full_section"]) == (1, 1)

    page.get_by_role("link", name="My registrations").click()
    robotics_row = page.locator("tr", has_text="OCE320")
    expect(robotics_row).to_contain_text("Waitlisted")
    expect(robotics_row).to_contain_text("#1")
    screenshot(page, "flow-07-my-registrations-waitlisted")

    # 5. The student holding the seat drops it, in a browser of their own.
    holder_page = new_page()
    login(holder_page, "rhea")
    holder_row = holder_page.locator("tr", has_text="OCE320")
    expect(holder_row).to_contain_text("Enrolled")
    # Dropping asks first; "Cancel" keeps the seat.
    asked = []
    holder_page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    holder_row.get_by_role("button", name=re.compile(r"^Drop")).click()
    expect(holder_page.locator("tr", has_text="OCE320")).to_contain_text("Enrolled")
    assert asked and asked[0].startswith(f"Drop {arranged['full_label']}?")
    assert _counts(live_server, arranged["full_section"]) == (1, 1)
    holder_page.once("dialog", lambda dialog: dialog.accept())
    holder_row.get_by_role("button", name=re.compile(r"^Drop")).click()
    expect(holder_page.locator(".alert-success")).to_contain_text(
        f"You dropped {arranged['full_label']}."
    )
    expect(holder_page.locator("tr", has_text="OCE320")).to_contain_text("Dropped")
    screenshot(holder_page, "flow-08-other-student-dropped")

    # 6. The waitlisted student was promoted into the freed seat.
    page.reload()
    robotics_row = page.locator("tr", has_text="OCE320")
    expect(robotics_row).to_contain_text("Enrolled")
    expect(robotics_row).not_to_contain_text("Waitlisted")
    screenshot(page, "flow-09-promoted")
    assert_accessible(page)
    assert _counts(live_server, arranged["full_section"]) == (1, 0)
    with live_server.session() as db:
        statuses = sorted(
            (r.student.username, r.status)
            for r in db.query(Registration).filter_by(section_id=arranged["full_section"])
        )
    assert statuses == [("rhea", "dropped"), ("student", "enrolled")]
