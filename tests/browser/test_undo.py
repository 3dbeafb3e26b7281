"""Undo in the browser: an instructor removes an assessment, and takes it back from the message."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal.models import Assessment, User
from tests import factories

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def section_id(live_server):
    """A section of the demo instructor with two assessments whose weights add up to 100%."""
    with live_server.session() as db:
        instructor = db.scalar(select(User).where(User.username == "instructor"))
        course = factories.make_course(db, code="UND201", title="Reversible Reactions")
        section = factories.make_section(db, course=course, instructor_id=instructor.id)
        factories.make_assessment(db, section, name="Titration quiz", kind="assignment", weight=40)
        factories.make_assessment(db, section, name="Final exam", kind="exam", weight=60)
        return section.id


def _quiz_removed(live_server) -> bool:
    with live_server.session() as db:
        quiz = db.scalar(select(Assessment).where(Assessment.name == "Titration quiz"))
        return quiz.deleted_at is not None


def test_an_assessment_removed_by_mistake_comes_back_with_undo(
    live_server, section_id, page, login, screenshot, assert_accessible
):
    login(page, "instructor")
    page.goto(f"/sections/{section_id}/assessments")
    quiz_row = page.get_by_role("row", name=re.compile("Titration quiz"))
    page.once("dialog", lambda dialog: dialog.accept())  # "Remove Titration quiz? ..."
    quiz_row.get_by_role("button", name="Remove Titration quiz").click()

    message = page.locator(".alert-success")
    expect(message).to_contain_text("Assessment 'Titration quiz' removed.")
    undo = message.get_by_role("button", name="Undo")
    expect(undo).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("Titration quiz"))).to_have_count(0)
    assert _quiz_removed(live_server)
    screenshot(page, "undo-flash-assessment-removed")
    assert_accessible(page)

    undo.click()  # no confirmation: undoing loses nothing
    expect(page.locator(".alert-success")).to_contain_text(
        "Assessment 'Titration quiz' restored; its marks count again."
    )
    expect(page.get_by_role("row", name=re.compile("Titration quiz"))).to_be_visible()
    expect(page.get_by_role("button", name="Undo")).to_have_count(0)
    expect(page.get_by_text("The weights add up to 100%.")).to_be_visible()
    assert not _quiz_removed(live_server)


def test_the_gradebook_weights_warning_is_accessible(
    live_server, section_id, page, login, screenshot, assert_accessible
):
    """With the quiz removed the weights add up to 60%: the gradebook warns, with a link to the
    assessments that must be as readable as the text around it."""
    login(page, "instructor")
    page.goto(f"/sections/{section_id}/assessments")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove Titration quiz").click()
    expect(page.get_by_role("button", name="Undo")).to_be_visible()
    page.goto(f"/sections/{section_id}/gradebook")
    warning = page.locator(".alert-warning:visible")  # not the finalise box, hidden
    expect(warning).to_contain_text("60%")
    expect(warning.get_by_role("link", name="Adjust the assessments")).to_be_visible()
    screenshot(page, "a11y-gradebook-weights-warning")
    assert_accessible(page)
