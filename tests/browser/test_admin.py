"""An admin reads the dashboard, imports a CSV with errors, reads the report, fixes it, imports."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from portal.models import AuditEntry, Course
from tests.browser.conftest import console_errors

pytestmark = pytest.mark.browser

HEADER = "code,title,credits,department\n"


def _csv(name: str, text: str) -> dict:
    return {"name": name, "mimeType": "text/csv", "buffer": text.encode("utf-8")}


def test_dashboard_draws_its_charts(live_server, page, login, screenshot, assert_accessible):
    errors = console_errors(page)
    login(page, "admin")
    page.goto("/admin/?term=all")
    page.wait_for_function(
        "() => window.Chart && document.querySelectorAll('canvas[data-chart]').length > 0 && "
        "[...document.querySelectorAll('canvas[data-chart]')].every(c => Chart.getChart(c))"
    )
    expect(page.get_by_role("heading", name="Enrolment by department and term")).to_be_visible()
    expect(page.locator("canvas[data-chart]").nth(2)).to_be_attached()  # three charts or more
    page.get_by_text("Show the figures as a table").first.click()
    expect(page.locator("details[open] table tbody tr").first).to_be_visible()
    screenshot(page, "admin-dashboard")
    assert_accessible(page)
    assert errors == []  # no CSP violations or script errors


def test_admin_imports_a_csv_with_errors_then_fixes_it(
    live_server, page, login, screenshot, assert_accessible
):
    login(page, "admin")
    page.goto("/admin/imports")
    assert_accessible(page)
    screenshot(page, "admin-import-form")

    bad = (
        HEADER
        + "IMP101,Imported one,3,Physics\nIMP102,Imported two,lots,Physics\nIMP101,Again,3,X\n"
    )
    page.get_by_label("What the file holds").select_option("courses")
    page.get_by_label("CSV file").set_input_files(_csv("courses.csv", bad))
    page.get_by_role("button", name="Upload and check").click()
    page.get_by_role("heading", name=re.compile("problems to fix")).wait_for()
    rows = page.locator("table.problem-table tbody tr").all_inner_texts()
    assert any("3\tcredits\t" in r and "'lots' is not a whole number." in r for r in rows), rows
    assert any("Duplicate course code IMP101: also on line 2." in r for r in rows), rows
    expect(page.get_by_role("button", name=re.compile("^Import"))).to_have_count(0)
    screenshot(page, "admin-import-report")
    assert_accessible(page)

    page.get_by_role("link", name="Upload the corrected file").click()
    fixed = HEADER + "".join(f"IMP{n:03d},Imported {n},3,Physics\n" for n in range(100, 2100))
    page.get_by_label("What the file holds").select_option("courses")
    page.get_by_label("CSV file").set_input_files(_csv("courses-fixed.csv", fixed))
    page.get_by_role("button", name="Upload and check").click()
    page.get_by_role("heading", name="The dry run found no problems").wait_for()
    with live_server.session() as db:
        assert (
            db.scalar(select(func.count()).select_from(Course).where(Course.code.startswith("IMP")))
            == 0
        )
    screenshot(page, "admin-import-ready")

    page.get_by_role("button", name="Import 2,000 courses").click()
    page.get_by_role("heading", name="Imported 2,000 courses.").wait_for(timeout=60_000)
    screenshot(page, "admin-import-done")
    assert_accessible(page)
    with live_server.session() as db:
        assert (
            db.scalar(select(func.count()).select_from(Course).where(Course.code.startswith("IMP")))
            == 2000
        )
        assert db.scalar(
            select(AuditEntry.summary).where(AuditEntry.action == "import.courses")
        ).startswith("Imported 2,000 courses from")


def test_import_progress_bar_is_shown_while_a_large_file_is_checked(
    live_server, page, login, screenshot
):
    login(page, "admin")
    page.goto("/admin/imports")
    big = "username,term_code,course_code,section_number\n" + "nobody,X,Y,1\n" * 60_000
    page.get_by_label("What the file holds").select_option("registrations")
    page.get_by_label("CSV file").set_input_files(_csv("big.csv", big))
    page.get_by_role("button", name="Upload and check").click()
    # Either the progress bar (still running) or the finished report; both are valid states.
    page.locator("progress.import-progress, table.problem-table").first.wait_for()
    if page.locator("progress.import-progress").count():
        screenshot(page, "admin-import-progress")
    page.get_by_role("heading", name="120,000 problems to fix").wait_for(timeout=120_000)
    expect(page.get_by_role("heading", name="Problems by column")).to_be_visible()
    summary = page.locator("table").filter(has_text="First one").inner_text()
    assert "username\t60,000\tline 2: There is no user 'nobody'." in summary
    expect(page.locator("table.problem-table tbody tr")).to_have_count(100)
    screenshot(page, "admin-import-big-report", full_page=False)
