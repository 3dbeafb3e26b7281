"""Finalising grades in Chromium: the confirmation says what is missing at the moment the
instructor confirms, whatever the page showed when it was loaded."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal.grading import services as grading
from portal.models import Assessment, Section, User
from tests import factories

pytestmark = pytest.mark.browser

STUDENTS = ("Rhea Marsh", "Tom Quill", "Uma Sand")


@pytest.fixture
def arranged(live_server):
    """A new section of the demo instructor with a lab and an exam, every mark in."""
    with live_server.session() as db:
        instructor = db.scalars(select(User).where(User.username == "instructor")).one()
        term = factories.make_term(db, state="open")
        course = factories.make_course(db, title="Field Geology", credits=3)
        section = factories.make_section(db, course=course, term=term, instructor_id=instructor.id)
        lab = factories.make_assessment(
            db, section, name="Rock lab", kind="lab", weight=40, max_points=20
        )
        exam = factories.make_assessment(
            db, section, name="Map exam", kind="exam", weight=60, max_points=50
        )
        students = [factories.make_user(db, "student", full_name=name) for name in STUDENTS]
        for student in students:
            factories.enrol(db, student, section)
            grading.set_mark(db, instructor, lab, student.id, Decimal("15"))
            grading.set_mark(db, instructor, exam, student.id, Decimal("40.5"))
        db.commit()
        return {
            "section": section.id,
            "instructor": instructor.id,
            "exam": exam.id,
            "students": [s.id for s in students],
        }


def _leave_cell(page, label: str, value: str) -> None:
    """Type into a gradebook cell and leave it, as a person does; returns once the server's
    answer is in place (the cell says Saved) and the warnings box was refreshed."""
    cell = page.get_by_label(label)
    cell.fill(value)
    with page.expect_response(re.compile(r"/finalise/check$")):
        cell.press("Tab")
    saved = page.locator("td", has=page.get_by_label(label))
    expect(saved).to_contain_text("Saved")


def _confirmation(page, *, accept: bool = False) -> str:
    """Press Finalise grades and read the confirmation as the person does; dismiss it (or
    accept it). The button stays disabled while the page asks the server, until the person has
    answered."""
    messages: list[str] = []

    def answer(dialog) -> None:
        messages.append(dialog.message)
        if accept:
            dialog.accept()
        else:
            dialog.dismiss()

    page.once("dialog", answer)
    button = page.get_by_role("button", name="Finalise grades")
    button.click()
    if accept:
        expect(page.locator(".alert-success")).to_be_visible()
    else:
        expect(button).to_be_enabled()
    (message,) = messages
    return message


def test_the_confirmation_follows_marks_changed_on_the_page_after_it_loaded(
    live_server, arranged, page, login
):
    login(page, "instructor")
    page.goto(f"/sections/{arranged['section']}/gradebook")
    warnings = page.locator("#finalise-warnings")
    expect(warnings).to_be_hidden()  # every mark is in when the page loads
    assert "missing" not in _confirmation(page)

    _leave_cell(page, "Map exam, Tom Quill (out of 50)", "")  # a mark cleared
    message = _confirmation(page)
    assert "1 mark(s) missing (Map exam: 1); they count as 0." in message
    expect(warnings).to_contain_text("1 mark(s) missing (Map exam: 1)")
    # Asked again: it says so every time.
    assert "1 mark(s) missing (Map exam: 1)" in _confirmation(page)

    _leave_cell(page, "Map exam, Tom Quill (out of 50)", "38")  # filled again
    assert "missing" not in _confirmation(page)
    expect(warnings).to_be_hidden()
    with live_server.session() as db:
        assert grading.finalisation_of(db, arranged["section"]) is None  # each was dismissed


def test_a_mark_cleared_elsewhere_after_loading_is_in_the_confirmation_and_the_grades(
    live_server, arranged, page, login
):
    login(page, "instructor")
    page.goto(f"/sections/{arranged['section']}/gradebook")
    expect(page.locator("#finalise-warnings")).to_be_hidden()
    with live_server.session() as db:  # a colleague clears a mark; this page does not know
        instructor = db.get(User, arranged["instructor"])
        exam = db.get(Assessment, arranged["exam"])
        grading.set_mark(db, instructor, exam, arranged["students"][2], None)
        db.commit()
    message = _confirmation(page, accept=True)
    assert "1 mark(s) missing (Map exam: 1); they count as 0." in message
    expect(page.locator(".alert-success")).to_contain_text("are final and the marks are locked")
    with live_server.session() as db:
        grades = {
            student_id: grading.gradebook_row(
                db, db.get(Section, arranged["section"]), student_id
            ).final_grade
            for student_id in arranged["students"]
        }
    assert grades[arranged["students"][2]] == "F"  # 15/20 of 40% only: what was confirmed
