"""Teaching in the browser: lab staff take attendance and enter marks; a student uploads a lab
report and sees their marks, final grade and transcript."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal.demo.services import DEMO_PASSWORD
from portal.grading import services as grading
from portal.models import AttendanceRecord, LabSession, Mark, Submission, User
from tests import factories
from tests.browser.conftest import console_errors

pytestmark = pytest.mark.browser

PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


@pytest.fixture(scope="module")
def arranged(live_server):
    """Two sections taught by the demo instructor and lab staff, each with the demo student
    and three classmates: one in progress (OCE101), one to be finalised (OCE102)."""
    with live_server.session() as db:
        demo = {
            u.username: u
            for u in db.scalars(
                select(User).where(User.username.in_(["instructor", "labstaff", "student"]))
            )
        }
        term = factories.make_term(db, state="open", code="LAB-T", name="Lab term")
        sections = {}
        for code, title in (("OCE101", "Ocean Lab Methods"), ("OCE102", "Tides and Waves")):
            course = factories.make_course(db, code=code, title=title, credits=4)
            section = factories.make_section(
                db,
                course=course,
                term=term,
                instructor_id=demo["instructor"].id,
                lab_staff_id=demo["labstaff"].id,
            )
            sections[code] = section
        classmates = [
            factories.make_user(db, "student", full_name=name, password=DEMO_PASSWORD)
            for name in ("Ada Byron", "Ben Carter", "Cleo Diaz")
        ]
        students = [demo["student"], *classmates]
        for section in sections.values():
            for student in students:
                factories.enrol(db, student, section)
        due = factories.now() + timedelta(days=7)
        lab1 = factories.make_assessment(
            db, sections["OCE101"], name="Lab 1: Salinity", kind="lab", weight=30,
            max_points=20, due_at=due,
        )  # fmt: skip
        factories.make_assessment(
            db, sections["OCE101"], name="Lab 2: Currents", kind="lab", weight=30, max_points=20
        )
        factories.make_assessment(
            db, sections["OCE101"], name="Final exam", kind="exam", weight=40, max_points=100
        )
        # OCE102: marked and finalised by its instructor.
        report = factories.make_assessment(
            db, sections["OCE102"], name="Wave report", kind="lab", weight=40, max_points=10
        )
        exam = factories.make_assessment(
            db, sections["OCE102"], name="Exam", kind="exam", weight=60, max_points=50
        )
        factories.make_mark(db, report, demo["student"], 9)
        factories.make_mark(db, exam, demo["student"], 44)  # 36 + 52.8 = 88.8 % -> B+
        grading.finalise_section(db, demo["instructor"], sections["OCE102"], now=factories.now())
        return {
            "section": sections["OCE101"].id,
            "label": sections["OCE101"].label,
            "lab1": lab1.id,
            "student": demo["student"].id,
            "classmates": [c.id for c in classmates],
            "final_section": sections["OCE102"].id,
        }


def test_lab_staff_take_attendance_and_enter_marks(
    live_server, arranged, page, login, screenshot, assert_accessible
):
    login(page, "labstaff")
    row = page.locator(".list-group-item", has_text=arranged["label"])
    screenshot(page, "teaching-01-staff-home")

    # 1. A lab session, then the whole roster on one screen.
    row.get_by_role("link", name=re.compile(r"^Attendance")).click()
    expect(page.get_by_role("heading", name="Add a lab session")).to_be_visible()
    page.get_by_label("Date").fill((date.today() + timedelta(days=2)).isoformat())
    page.get_by_label("Starts").fill("14:00")
    page.get_by_label("Ends").fill("16:00")
    page.get_by_label("Room").fill("LAB-3")
    page.get_by_role("button", name="Add lab session").click()
    expect(page.get_by_role("heading", name=re.compile("^Attendance"))).to_be_visible()
    expect(page.get_by_text("4 of 4 not recorded yet")).to_be_visible()
    # The page shows before its deferred scripts run: like a person, wait until it has loaded
    # (htmx has taken over its buttons) before clicking.
    page.wait_for_load_state()

    # 2. One click per student, saved at once (htmx swaps the line and the counts).
    for name, status in (("Ada Byron", "Present"), ("Ben Carter", "Late"), ("Cleo Diaz", "Absent")):
        group = page.get_by_role("group", name=re.compile(name))
        group.get_by_role("button", name=status).click()
        expect(
            page.get_by_role("group", name=re.compile(name)).get_by_role("button", name=status)
        ).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#attendance-counts")).to_contain_text("1 present")
    expect(page.locator("#attendance-counts")).to_contain_text("1 late")
    expect(page.locator("#attendance-counts")).to_contain_text("1 of 4 not recorded yet")
    page.get_by_role("button", name="Mark everyone not recorded yet as present").click()
    expect(page.get_by_text("1 student(s) without a record marked present.")).to_be_visible()
    expect(page.locator("#attendance-counts")).to_contain_text("2 present")
    screenshot(page, "teaching-02-attendance-taken")
    assert_accessible(page)
    with live_server.session() as db:
        statuses = sorted(
            db.scalars(
                select(AttendanceRecord.status)
                .join(AttendanceRecord.lab_session)
                .where(LabSession.section_id == arranged["section"])
            )
        )
    assert statuses == ["absent", "late", "present", "present"]

    page.get_by_role("link", name=re.compile("attendance$")).click()
    expect(page.locator("#section-rate")).to_have_text("75%")
    screenshot(page, "teaching-03-attendance-rates")
    assert_accessible(page)

    # 3. Marks: lab columns only; Tab moves along the row, Enter to the next student.
    page.get_by_role("link", name="Gradebook", exact=True).click()
    expect(page.get_by_role("columnheader", name=re.compile("Lab 1: Salinity"))).to_be_visible()
    expect(page.get_by_role("columnheader", name=re.compile("Final exam"))).to_have_count(0)
    # The table is on screen before htmx and the gradebook's keys are set up (deferred
    # scripts): a mark typed before the page has loaded would never be sent.
    page.wait_for_load_state()
    first = page.get_by_label("Lab 1: Salinity, Ada Byron (out of 20)")
    first.fill("17")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Lab 2: Currents, Ada Byron (out of 20)")).to_be_focused()
    page.keyboard.type("25")  # more than the maximum
    page.keyboard.press("Enter")
    expect(page.get_by_label("Lab 2: Currents, Ben Carter (out of 20)")).to_be_focused()
    too_many = page.get_by_label("Lab 2: Currents, Ada Byron (out of 20)")
    expect(too_many).to_have_attribute("aria-invalid", "true")
    expect(too_many).to_have_value("25")  # what was typed is kept
    expect(page.get_by_text("At most 20 points for Lab 2: Currents.")).to_be_visible()
    page.keyboard.type("12,5")
    page.keyboard.press("Tab")
    expect(page.locator("td", has=page.get_by_label("Lab 2: Currents, Ben Carter (out of 20)")))\
        .to_contain_text("Saved")  # fmt: skip
    screenshot(page, "teaching-04-gradebook-error-kept")
    assert_accessible(page)

    too_many.fill("19")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Lab 2: Currents, Ada Byron (out of 20)")).not_to_have_attribute(
        "aria-invalid", "true"
    )
    page.reload()
    expect(page.get_by_label("Lab 1: Salinity, Ada Byron (out of 20)")).to_have_value("17")
    expect(page.get_by_label("Lab 2: Currents, Ada Byron (out of 20)")).to_have_value("19")
    expect(page.get_by_label("Lab 2: Currents, Ben Carter (out of 20)")).to_have_value("12.5")
    screenshot(page, "teaching-05-gradebook-saved")
    with live_server.session() as db:
        assert sorted(db.scalars(select(Mark.points).join(Mark.assessment).where(
            Mark.points.is_not(None), Mark.assessment.has(section_id=arranged["section"])
        ))) == [12.5, 17.0, 19.0]  # fmt: skip


def test_student_uploads_a_report_and_sees_their_grade(
    live_server, arranged, page, login, screenshot, assert_accessible, tmp_path
):
    login(page, "student")
    page.get_by_role("link", name="Lab reports").click()
    expect(page.get_by_role("heading", name="Lab reports")).to_be_visible()
    card = page.locator(
        "section", has=page.get_by_role("heading", name=re.compile("Lab 1: Salinity"))
    )
    expect(card).to_contain_text("Not handed in yet.")
    report = tmp_path / "salinity report.pdf"
    report.write_bytes(PDF)
    card.get_by_label("Your report").set_input_files(str(report))
    card.get_by_role("button", name=re.compile("^Upload for")).click()
    expect(page.locator(".alert-success")).to_contain_text(
        "salinity report.pdf uploaded for Lab 1: Salinity (attempt 1)."
    )
    card = page.locator(
        "section", has=page.get_by_role("heading", name=re.compile("Lab 1: Salinity"))
    )
    expect(card.get_by_role("link", name="salinity report.pdf")).to_be_visible()
    expect(card).to_contain_text("On time")

    # A lying extension is refused with a reason, and the first attempt stays.
    fake = tmp_path / "graph.pdf"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    card.get_by_label("Upload a new version").set_input_files(str(fake))
    card.get_by_role("button", name=re.compile("^Upload for")).click()
    expect(page.locator(".alert-danger")).to_contain_text("its content is a PNG image")
    screenshot(page, "teaching-06-lab-reports")
    assert_accessible(page)
    with live_server.session() as db:
        handed_in = db.scalars(
            select(Submission).where(Submission.assessment_id == arranged["lab1"])
        )
        assert [s.original_name for s in handed_in] == ["salinity report.pdf"]

    # The download comes back as an attachment with the same bytes.
    with page.expect_download() as download_info:
        card.get_by_role("link", name="salinity report.pdf").click()
    download = download_info.value
    assert download.suggested_filename == "salinity report.pdf"
    assert Path(download.path()).read_bytes() == PDF

    # Marks, the final grade and GPA.
    page.get_by_role("link", name="My grades").click()
    finalised = page.locator("section.card", has_text="OCE102")
    expect(finalised).to_contain_text("Final grade B+")
    expect(finalised).to_contain_text("44 / 50")
    in_progress = page.locator("section.card", has_text="OCE101")
    expect(in_progress).to_contain_text("not marked")
    with live_server.session() as db:  # the demo student has earlier grades as well
        expected = grading.transcript(db, db.get(User, arranged["student"])).cumulative_gpa
    expect(page.locator("#cumulative-gpa")).to_contain_text(f"{expected:.2f}")
    screenshot(page, "teaching-07-my-grades")
    assert_accessible(page)

    page.get_by_role("link", name="Transcript").click()
    expect(page.get_by_role("heading", name="Transcript")).to_be_visible()
    expect(page.locator("tr", has_text="OCE102")).to_contain_text("B+")
    expect(page.locator("tr", has_text="OCE101")).to_contain_text("In progress")
    screenshot(page, "teaching-08-transcript")
    assert_accessible(page)
    page.emulate_media(media="print")
    expect(page.get_by_role("button", name="Print")).to_be_hidden()
    expect(page.locator("header")).to_be_hidden()
    screenshot(page, "teaching-09-transcript-print")


def test_instructor_pages_are_accessible(
    live_server, arranged, page, login, screenshot, assert_accessible
):
    login(page, "instructor")
    section = arranged["section"]
    for name, path in (
        ("gradebook", f"/sections/{section}/gradebook"),
        ("assessments", f"/sections/{section}/assessments"),
        ("submissions", f"/sections/{section}/submissions"),
    ):
        page.goto(path)
        expect(page.get_by_role("heading", level=1)).to_contain_text(arranged["label"])
        screenshot(page, f"teaching-instructor-{name}")
        assert_accessible(page)
    page.goto(f"/sections/{section}/gradebook")
    expect(page.get_by_role("columnheader", name="Course %")).to_be_visible()
    expect(page.get_by_role("button", name="Finalise grades")).to_be_visible()


def test_admin_grade_scale_and_student_transcript(
    live_server, arranged, page, login, screenshot, assert_accessible
):
    login(page, "admin")
    page.goto("/grade-scale")
    expect(page.get_by_label("A", exact=True)).to_have_value("93")
    page.get_by_label("D+", exact=True).fill("")
    page.get_by_label("D", exact=True).fill("58")
    page.get_by_role("button", name="Save grade scale").click()
    expect(page.locator(".alert-success")).to_contain_text("Grade scale saved")
    expect(page.get_by_label("D", exact=True)).to_have_value("58")
    expect(page.get_by_label("D+", exact=True)).to_have_value("")
    page.get_by_label("F", exact=True).fill("5")
    page.get_by_role("button", name="Save grade scale").click()
    expect(page.locator(".alert-danger")).to_contain_text("must start at 0%")
    expect(page.get_by_label("F", exact=True)).to_have_value("5")  # kept as typed
    screenshot(page, "teaching-10-grade-scale")
    assert_accessible(page)
    page.goto(f"/students/{arranged['student']}/transcript")
    expect(page.get_by_text("Sam Student")).to_be_visible()
    expect(page.locator("tr", has_text="OCE102")).to_contain_text("B+")
    assert_accessible(page)


def _console_errors(page):
    errors = console_errors(page)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_admin_changes_a_final_mark_once_the_reason_is_given(
    live_server, arranged, page, login, screenshot, assert_accessible
):
    errors = _console_errors(page)
    login(page, "admin")
    # An open gradebook: a save logs nothing in the console (no missing hx-include target).
    page.goto(f"/sections/{arranged['section']}/gradebook")
    page.get_by_label("Final exam, Cleo Diaz (out of 100)").fill("71")
    page.keyboard.press("Tab")
    cleo = page.locator("td", has=page.get_by_label("Final exam, Cleo Diaz (out of 100)"))
    expect(cleo).to_contain_text("Saved")

    page.goto(f"/sections/{arranged['final_section']}/gradebook")
    expect(page.get_by_text("Give the reason first")).to_be_visible()
    cell = page.get_by_label("Exam, Sam Student (out of 50)")
    expect(cell).to_have_value("44")
    cell.fill("46")
    page.keyboard.press("Tab")  # typed before the reason: refused, the value kept
    cell = page.get_by_label("Exam, Sam Student (out of 50)")
    expect(cell).to_have_attribute("aria-invalid", "true")
    expect(cell).to_have_value("46")
    expect(
        page.get_by_text("Give a reason for changing a mark after grades are final.")
    ).to_be_visible()
    # Leaving the refused cell again, unchanged, sends it again (still refused: no reason).
    cell.focus()
    with page.expect_response(re.compile(r"/gradebook/cell$")) as resent:
        page.keyboard.press("Tab")
    assert resent.value.status == 200
    expect(
        page.get_by_text("Give a reason for changing a mark after grades are final.")
    ).to_be_visible()
    # Once the reason is there, the refused mark is sent again by itself and saved. (First
    # let htmx swap in the answer to the resend: a cell still in flight is not sent again.)
    page.wait_for_function("() => !document.querySelector('.htmx-request, .htmx-settling')")
    page.get_by_label("Reason for changing a final mark").fill("Exam re-marked after appeal")
    with page.expect_response(re.compile(r"/gradebook/cell$")):
        page.keyboard.press("Tab")
    saved = page.locator("td", has=page.get_by_label("Exam, Sam Student (out of 50)"))
    expect(saved).to_contain_text("Saved")
    expect(page.get_by_label("Exam, Sam Student (out of 50)")).not_to_have_attribute(
        "aria-invalid", "true"
    )
    screenshot(page, "teaching-08-final-mark-changed")
    assert_accessible(page)
    with live_server.session() as db:
        points = db.scalars(
            select(Mark.points).where(
                Mark.student_id == arranged["student"],
                Mark.assessment.has(section_id=arranged["final_section"], name="Exam"),
            )
        ).one()
    assert points == 46
    assert errors == []


def test_a_final_gradebook_is_read_only_for_its_instructor(
    live_server, arranged, page, login, screenshot
):
    errors = _console_errors(page)
    login(page, "instructor")
    page.goto(f"/sections/{arranged['final_section']}/gradebook")
    expect(page.locator("#gradebook-help")).to_contain_text("The marks are locked")
    expect(page.locator("table.gradebook input")).to_have_count(0)
    expect(page.get_by_role("button", name="Save all marks")).to_have_count(0)
    expect(page.locator("td.gb-cell-locked").first).to_be_visible()
    screenshot(page, "teaching-09-final-gradebook-read-only")
    assert errors == []


def test_finalising_names_open_assessments_and_missing_marks(live_server, arranged, page, login):
    login(page, "instructor")
    page.goto(f"/sections/{arranged['section']}/gradebook")
    warnings = page.locator("#finalise-warnings")
    expect(warnings).to_contain_text("Still open for lab reports: Lab 1: Salinity (due")
    expect(warnings).to_contain_text("Finalising closes their uploads.")
    expect(warnings).to_contain_text("mark(s) missing")
    messages = []
    page.on("dialog", lambda dialog: (messages.append(dialog.message), dialog.dismiss()))
    finalise = page.get_by_role("button", name="Finalise grades")
    finalise.click()
    expect(finalise).to_be_enabled()  # disabled while the server is asked and the person answers
    assert len(messages) == 1
    assert "Still open for lab reports: Lab 1: Salinity" in messages[0]
    assert "they count as 0" in messages[0]
    with live_server.session() as db:
        from portal.grading.services import finalisation_of

        assert finalisation_of(db, arranged["section"]) is None  # dismissed: nothing happened


def test_a_due_time_is_typed_and_shown_in_local_time(browser, live_server, arranged, login):
    """A browser in Tokyo (UTC+9) types 09:00 local: 00:00 UTC is stored and 09:00 shown again."""
    context = browser.new_context(base_url=live_server.url, timezone_id="Asia/Tokyo")
    page = context.new_page()
    try:
        login(page, "instructor")
        page.goto(f"/sections/{arranged['section']}/assessments")
        page.get_by_label("Name").fill("Tide table")
        page.get_by_label("Kind").select_option("assignment")
        page.get_by_label("Weight (%)").fill("0")
        page.get_by_label("Maximum points").fill("10")
        page.get_by_label("Due (your local time)").fill("2026-12-10T09:00")
        page.get_by_role("button", name="Add assessment").click()
        expect(page.locator(".alert-success")).to_contain_text("Tide table")
        with live_server.session() as db:
            from portal.models import Assessment

            stored = db.scalars(select(Assessment).where(Assessment.name == "Tide table")).one()
            assert stored.due_at.isoformat() == "2026-12-10T00:00:00+00:00"
            assessment_id = stored.id
        page.goto(f"/assessments/{assessment_id}/edit")
        expect(page.get_by_label("Due (your local time)")).to_have_value("2026-12-10T09:00")
    finally:
        context.close()
