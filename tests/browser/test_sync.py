"""Offline sync as people see it, in Chromium: a field user connects a new copy to the campus
server, works while the server is stopped, sees the changes waiting, syncs when it is back;
an administrator resolves the conflict it made. Two real portals served by waitress: the
central server (server mode, SQLite file) stopped and started again on the same address, and
the field user's desktop copy."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect
from sqlalchemy import select

from portal.extensions import db as _db
from portal.models import Assessment, Mark, Registration, Section, SyncConflict, User
from portal.sync import capture
from portal.sync.server import enrolment
from tests import factories
from tests.browser.conftest import (
    check_accessible,
    console_errors,
    login_page,
    save_screenshot,
    serve,
)
from tests.browser.portals import sqlite_portal

pytestmark = pytest.mark.browser

PASSWORD = factories.PASSWORD
WIDTHS = (1280, 400)


def _campus(server: Flask) -> dict[str, Any]:
    """An administrator, a field instructor with a section of two students, an exam, and a
    mark already entered on the server."""
    from portal.grading.services import set_mark

    with server.app_context():
        db = _db.session
        admin = factories.make_user(db, "admin", username="ada", full_name="Ada Admin")
        ines = factories.make_user(db, "instructor", username="ines", full_name="Ines Field")
        students = [
            factories.make_user(db, "student", username=f"s{n}", full_name=name)
            for n, name in ((1, "Ana Reyes"), (2, "Bo Chen"))
        ]
        section = factories.make_section(db, instructor_id=ines.id)
        for student in students:
            db.add(Registration(student_id=student.id, section_id=section.id, status="enrolled"))
        section.enrolled_count = 2
        exam = Assessment(
            section_id=section.id, name="Field report", kind="exam", weight=40, max_points=100
        )
        db.add(exam)
        db.flush()
        capture.attribute_to(db, admin.id)
        set_mark(db, admin, exam, students[0].id, 60)
        code = enrolment.create_enrolment_code(db, ines, created_by=admin, now=factories.now())
        db.commit()
        return {
            "code": code,
            "section": section.id,
            "exam": exam.id,
            "student": students[0].id,
            "admin": admin.id,
        }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _shots(page: Any, name: str) -> None:
    """The page at 1280 px and at 400 px wide."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        save_screenshot(page, f"{name}-{width}")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_field_user_works_offline_then_syncs_and_an_admin_resolves_the_conflict(
    tmp_path: Path, browser: Any
) -> None:
    port = _free_port()
    server_url = f"http://127.0.0.1:{port}"
    server = sqlite_portal(tmp_path / "server", MODE="server")
    arranged = _campus(server)
    laptop = sqlite_portal(
        tmp_path / "laptop", SERVER_URL=server_url, ENROLMENT_CODE=arranged["code"]
    )

    # The session's Chromium (one Playwright per process: a second one finds the first's loop).
    with serve(laptop) as laptop_url:
        field = browser.new_context(base_url=laptop_url, viewport={"width": 1280, "height": 900})
        field.set_default_timeout(15_000)
        page = field.new_page()
        # Script errors and CSP violations on the pages sync adds or changes. (The gradebook
        # logs one of its own, an hx-include of a reason field shown only once grades are
        # final; it is not about sync.)
        errors = console_errors(page, unless=lambda _message: "/gradebook" in page.url)

        # 1. A new copy: the first-run page offers to connect, with what IT preset.
        with serve(server, port=port):
            page.goto("/")
            expect(
                page.get_by_role("heading", name="Connect to your campus server")
            ).to_be_visible()
            expect(page.get_by_label("Campus server address")).to_have_value(server_url)
            expect(page.get_by_label("Enrolment code")).to_have_value(arranged["code"])
            _shots(page, "sync-01-first-run-connect")
            check_accessible(page)
            page.get_by_role("button", name="Connect").click()
            expect(page.get_by_text("connected to the campus server for ines")).to_be_visible()
            expect(page.get_by_label("Username")).to_have_value("ines")
            status = page.locator("[data-sync-status]")
            expect(status.locator('[data-sync-field="headline"]')).to_have_text("Online")
            login_page(page, "ines", PASSWORD)  # the verifier came with the first sync
            expect(status).to_contain_text("nothing waiting to be sent")
            _shots(page, "sync-02-online")
            check_accessible(page)

        # 2. The server stops; the field user keeps working.
        page.goto(f"/sections/{arranged['section']}/gradebook")
        cell = page.get_by_label("Field report, Ana Reyes (out of 100)")
        expect(cell).to_have_value("60")
        cell.fill("42")
        page.keyboard.press("Tab")
        expect(page.locator("td", has=cell)).to_contain_text("Saved")
        page.goto("/")
        expect(status.locator('[data-sync-field="pending_text"]')).to_have_text("1 change waiting")
        page.get_by_role("button", name="Sync now").click()
        expect(status.locator('[data-sync-field="headline"]')).to_have_text("Offline")
        expect(status).to_contain_text("The campus server cannot be reached")
        expect(status).to_contain_text("1 change waiting")
        _shots(page, "sync-03-offline-changes-waiting")
        check_accessible(page)
        page.get_by_role("link", name="Sync details").click()
        expect(page.get_by_role("heading", name="Sync with the campus server")).to_be_visible()
        expect(page.get_by_role("link", name="Export unsent changes")).to_be_visible()
        _shots(page, "sync-03b-status-page-offline")
        check_accessible(page)
        page.goto("/")

        # 3. The server is back; meanwhile an administrator changed the same mark there.
        with serve(server, port=port):
            from portal.grading.services import set_mark

            with server.app_context():
                db = _db.session
                admin = db.get(User, arranged["admin"])
                capture.attribute_to(db, admin.id)
                set_mark(db, admin, db.get(Assessment, arranged["exam"]), arranged["student"], 55)
                db.commit()
            page.get_by_role("button", name="Sync now").click()
            expect(status.locator('[data-sync-field="progress"]')).to_be_visible()
            save_screenshot(page, "sync-04-syncing-1280", full_page=False)  # while it lasts
            expect(status.locator('[data-sync-field="message"]')).to_have_text(
                re.compile(r"Sync finished: pushed 1, pulled \d+, conflicts 1\.")
            )
            expect(status.locator('[data-sync-field="progress"]')).to_be_hidden()
            expect(status).to_contain_text("nothing waiting to be sent")
            expect(status.locator('[data-sync-field="headline"]')).to_have_text("Online")
            _shots(page, "sync-05-synced")
            page.reload()
            page.get_by_role("link", name="My sync conflicts (1)").click()
            expect(page.get_by_role("heading", name="My sync conflicts")).to_be_visible()
            expect(page.get_by_role("cell", name="Lost to a newer edit")).to_be_visible()
            # "Sync now" is pressed on this page later: wait until it has loaded (its deferred
            # sync.js makes the button start a sync in place rather than post a plain form).
            page.wait_for_load_state()
            _shots(page, "sync-06-my-conflicts")
            check_accessible(page)

            # 4. The administrator reviews it on the campus server and applies the other value.
            office = browser.new_context(
                base_url=server_url, viewport={"width": 1280, "height": 900}
            )
            office.set_default_timeout(15_000)
            admin_page = office.new_page()
            console_errors(admin_page, errors)
            login_page(admin_page, "ada", PASSWORD)
            admin_page.goto("/admin/")
            expect(admin_page.locator("[data-open-conflicts]")).to_contain_text(
                "1 open sync conflict to review"
            )
            admin_page.get_by_role("link", name="Sync", exact=True).click()
            expect(admin_page.locator("table tbody tr")).to_have_count(1)
            expect(admin_page.locator("table tbody tr")).to_contain_text("ines")
            _shots(admin_page, "sync-07-admin-devices")
            check_accessible(admin_page)
            admin_page.get_by_role("link", name="Conflicts", exact=True).click()
            row = admin_page.get_by_role("row", name=re.compile("Field report"))
            expect(row).to_contain_text("Lost to a newer edit")
            expect(row).to_contain_text("Ana Reyes's Field report mark in")
            expect(row.locator("td.sync-value").nth(0)).to_have_text("42 (points)")
            expect(row.locator("td.sync-value").nth(1)).to_have_text("55")
            expect(row).to_contain_text("ines")
            _shots(admin_page, "sync-08-admin-conflicts")
            check_accessible(admin_page)
            row.get_by_role("button", name=re.compile("Apply 42")).click()
            expect(admin_page.get_by_text("42 is in place")).to_be_visible()
            expect(admin_page.get_by_text("No conflicts here")).to_be_visible()
            _shots(admin_page, "sync-09-admin-conflict-resolved")
            with server.app_context():
                assert (
                    _db.session.scalar(
                        select(Mark.points).where(Mark.student_id == arranged["student"])
                    )
                    == 42
                )
                assert _db.session.scalar(select(SyncConflict.resolution)) == "applied"

            # The field user's copy learns the outcome at its next sync.
            page.get_by_role("button", name="Sync now").click()
            expect(status.locator('[data-sync-field="message"]')).to_have_text(
                re.compile(r"Sync finished: pushed 0, pulled \d+, conflicts 0\.")
            )
            page.goto(f"/sections/{arranged['section']}/gradebook")
            expect(page.get_by_label("Field report, Ana Reyes (out of 100)")).to_have_value("42")
            office.close()
        field.close()
    from portal.sync.device.runner import runner_for

    runner_for(laptop).stop()
    assert errors == []  # no CSP violations or script errors
    with laptop.app_context():
        _db.session.remove()
        _db.engine.dispose()
    with server.app_context():
        _db.session.remove()
        _db.engine.dispose()


def test_a_mark_refused_offline_is_read_and_acted_on(tmp_path: Path, browser: Any) -> None:
    """An instructor's mark entered on the laptop while the grades were finalised on the
    server: what the laptop's My sync conflicts and gradebook say, the administrator's
    Conflicts page, the value applied with a reason, and the laptop saying it is in place."""
    from portal.grading.services import finalise_section

    port = _free_port()
    server_url = f"http://127.0.0.1:{port}"
    server = sqlite_portal(tmp_path / "server", MODE="server")
    with server.app_context():
        db = _db.session
        factories.make_user(db, "admin", username="ada", full_name="Ada Admin")
        terry = factories.make_user(db, "instructor", username="terry", full_name="Terry Teacher")
        sam = factories.make_user(db, "student", username="sam", full_name="Sam Student")
        section = factories.make_section(db, instructor_id=terry.id)
        twin = factories.make_section(db, course=section.course, term=section.term)
        db.add(Registration(student_id=sam.id, section_id=section.id, status="enrolled"))
        section.enrolled_count = 1
        lab2 = Assessment(section_id=section.id, name="Lab 2", kind="lab", weight=20, max_points=50)
        final = Assessment(
            section_id=section.id, name="Final", kind="exam", weight=80, max_points=100
        )
        other_lab2 = Assessment(
            section_id=twin.id, name="Lab 2", kind="lab", weight=20, max_points=50
        )
        db.add_all([lab2, final, other_lab2])
        db.flush()
        code = enrolment.create_enrolment_code(db, terry, created_by=None, now=factories.now())
        ids = {"section": section.id, "terry": terry.id, "sam": sam.id, "lab2": lab2.id}
        label = section.label
        db.commit()
    laptop = sqlite_portal(tmp_path / "laptop", SERVER_URL=server_url, ENROLMENT_CODE=code)
    with serve(laptop) as laptop_url, serve(server, port=port):
        field = browser.new_context(base_url=laptop_url, viewport={"width": 1280, "height": 900})
        field.set_default_timeout(15_000)
        page = field.new_page()
        page.goto("/")
        page.get_by_label("Name of this copy").fill("Terry's field laptop")
        page.get_by_role("button", name="Connect").click()
        status = page.locator("[data-sync-status]")
        expect(status.locator('[data-sync-field="headline"]')).to_have_text("Online")
        login_page(page, "terry", PASSWORD)

        # Offline in spirit: the mark is entered before the laptop hears of the finalising.
        page.goto(f"/sections/{ids['section']}/gradebook")
        cell = page.get_by_label("Lab 2, Sam Student (out of 50)")
        cell.fill("45")
        page.keyboard.press("Tab")
        expect(page.locator("td", has=cell)).to_contain_text("Saved")
        with server.app_context():
            db = _db.session
            capture.attribute_to(db, ids["terry"])
            finalise_section(
                db, db.get(User, ids["terry"]), db.get(Section, ids["section"]), now=factories.now()
            )
            db.commit()
        page.get_by_role("button", name="Sync now").click()
        expect(status.locator('[data-sync-field="message"]')).to_contain_text("Sync finished")
        page.goto(f"/sections/{ids['section']}/gradebook")
        note = page.locator("[data-sync-note]")
        expect(note).to_contain_text("45 entered offline by Terry Teacher was refused")
        expect(note).to_contain_text(f"Grades for {label} are final")
        _shots(page, "sync-10-gradebook-refused-mark")
        check_accessible(page)
        note.get_by_role("link", name="What can be done").click()
        row = page.locator("tr[data-conflict]")
        expect(row).to_contain_text(f"Sam Student's Lab 2 mark in {label}")
        expect(row).to_contain_text("Student: Sam Student (sam)")
        expect(row).to_contain_text(f"Section: {label}")
        expect(row.locator("td.sync-value").nth(0)).to_have_text("45 (points)")
        expect(row.locator("td.sync-value").nth(1)).to_have_text("no mark")
        expect(row).to_contain_text(f"Grades of {label} are final: ask an administrator")
        _shots(page, "sync-11-my-conflicts-refused-mark")
        check_accessible(page)

        # The administrator reads the same and applies it with a reason.
        office = browser.new_context(base_url=server_url, viewport={"width": 1280, "height": 900})
        office.set_default_timeout(15_000)
        admin_page = office.new_page()
        login_page(admin_page, "ada", PASSWORD)
        admin_page.goto("/admin/sync/conflicts")
        row = admin_page.locator("tr[data-conflict]")
        expect(row).to_contain_text(f"Sam Student's Lab 2 mark in {label}")
        expect(row).to_contain_text("Terry's field laptop")
        _shots(admin_page, "sync-12-admin-conflicts-refused-mark")
        check_accessible(admin_page)
        row.get_by_label("Reason (final grades)").fill("Marked in the lab before grades closed.")
        row.get_by_role("button", name=re.compile("Apply 45")).click()
        expect(admin_page.get_by_text("45 is in place")).to_be_visible()
        admin_page.goto("/admin/sync/devices")
        expect(admin_page.locator("tbody tr")).to_contain_text("Terry Teacher (terry)")
        expect(admin_page.get_by_label(re.compile("Name of the device"))).to_have_value(
            "Terry's field laptop"
        )
        _shots(admin_page, "sync-13-admin-devices")
        check_accessible(admin_page)
        office.close()

        # The laptop's next sync: the value is in place, and the laptop says so.
        page.get_by_role("button", name="Sync now").click()
        expect(status.locator('[data-sync-field="message"]')).to_contain_text("Sync finished")
        page.goto("/sync/my-conflicts")
        expect(page.locator("[data-applied]")).to_contain_text(
            f"45 for Sam Student's Lab 2 mark in {label}: now in place"
        )
        _shots(page, "sync-14-my-conflicts-now-in-place")
        check_accessible(page)
        with server.app_context():
            assert _db.session.scalar(select(Mark.points)) == 45
        field.close()
    from portal.sync.device.runner import runner_for

    runner_for(laptop).stop()
    for app in (laptop, server):
        with app.app_context():
            _db.session.remove()
            _db.engine.dispose()


def test_a_revoked_copy_enrols_again_from_its_sync_area(tmp_path: Path, browser: Any) -> None:
    """An administrator revokes the field user's laptop; its sync area says so and offers Enrol
    again beside Export unsent changes; with a new code the same copy is back and sends the
    mark that waited."""
    from portal.models import Device

    port = _free_port()
    server_url = f"http://127.0.0.1:{port}"
    server = sqlite_portal(tmp_path / "server", MODE="server")
    arranged = _campus(server)
    laptop = sqlite_portal(
        tmp_path / "laptop", SERVER_URL=server_url, ENROLMENT_CODE=arranged["code"]
    )
    with serve(laptop) as laptop_url, serve(server, port=port):
        field = browser.new_context(base_url=laptop_url, viewport={"width": 1280, "height": 900})
        field.set_default_timeout(15_000)
        page = field.new_page()
        errors = console_errors(page, unless=lambda _message: "/gradebook" in page.url)
        page.goto("/")
        page.get_by_role("button", name="Connect").click()
        status = page.locator("[data-sync-status]")
        expect(status.locator('[data-sync-field="headline"]')).to_have_text("Online")
        login_page(page, "ines", PASSWORD)

        with server.app_context():
            db = _db.session
            admin = db.get(User, arranged["admin"])
            enrolment.revoke_device(db, db.scalar(select(Device)), actor=admin, now=factories.now())
            db.commit()
        page.goto(f"/sections/{arranged['section']}/gradebook")
        cell = page.get_by_label("Field report, Ana Reyes (out of 100)")
        cell.fill("47")
        page.keyboard.press("Tab")
        expect(page.locator("td", has=cell)).to_contain_text("Saved")
        page.goto("/")
        enrol_again = status.get_by_role("link", name="Enrol again")
        expect(enrol_again).to_be_hidden()  # not revoked as far as the copy knows yet
        page.wait_for_load_state()
        status.get_by_role("button", name="Sync now").click()
        expect(status.locator('[data-sync-field="headline"]')).to_have_text(
            "This computer was disconnected from the campus server"
        )
        expect(enrol_again).to_be_visible()  # shown in place by the status area's script
        expect(status.get_by_role("link", name="Export unsent changes")).to_be_visible()
        expect(status.get_by_role("button", name="Sync now")).to_be_hidden()
        expect(status).to_contain_text("enrol it again (Enrol again)")
        _shots(page, "sync-10-revoked")
        check_accessible(page)

        with server.app_context():
            db = _db.session
            ines = db.scalar(select(User).where(User.username == "ines"))
            code = enrolment.create_enrolment_code(db, ines, created_by=None, now=factories.now())
            db.commit()
        enrol_again.click()
        expect(page.get_by_role("heading", name="Enrol this computer again")).to_be_visible()
        expect(page.get_by_text("1 change waiting here is sent")).to_be_visible()
        _shots(page, "sync-11-enrol-again")
        check_accessible(page)
        page.get_by_label("New enrolment code").fill(code)
        page.get_by_role("button", name="Enrol again").click()
        expect(page.get_by_text("This computer is enrolled again")).to_be_visible()
        expect(status.locator('[data-sync-field="headline"]')).to_have_text("Online")
        expect(status).to_contain_text("nothing waiting to be sent")
        with server.app_context():
            assert (
                _db.session.scalar(
                    select(Mark.points).where(Mark.student_id == arranged["student"])
                )
                == 47
            )
        field.close()
    from portal.sync.device.runner import runner_for

    runner_for(laptop).stop()
    assert errors == []
    with laptop.app_context():
        _db.session.remove()
        _db.engine.dispose()
    with server.app_context():
        _db.session.remove()
        _db.engine.dispose()
