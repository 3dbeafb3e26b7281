"""A student hands in lab reports of real size through the Lab reports page in Chromium: a
257 KB PDF and a 206 KB photo are stored, a file over the 20 MB limit is refused with the limit
named, and the earlier attempts stay."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal.models import Submission, User
from tests import factories, realfiles

pytestmark = pytest.mark.browser
KB, MB = realfiles.KB, realfiles.MB


@pytest.fixture(scope="module")
def spectra(live_server):
    """A lab assessment, "Lab 7: Spectra", in a section the demo student attends."""
    with live_server.session() as db:
        student = db.scalars(select(User).where(User.username == "student")).one()
        term = factories.make_term(db, state="open", code="UPL-T", name="Upload term")
        course = factories.make_course(db, code="PHY210", title="Optics", credits=4)
        section = factories.make_section(db, course=course, term=term)
        assessment = factories.make_assessment(
            db,
            section,
            kind="lab",
            name="Lab 7: Spectra",
            due_at=factories.now() + timedelta(days=7),
        )
        factories.enrol(db, student, section)
        db.flush()
        return assessment.id


def test_real_lab_reports_through_the_page(live_server, spectra, page, login, tmp_path):
    login(page, "student")
    page.get_by_role("link", name="Lab reports").click()

    def card():
        return page.locator(
            "section", has=page.get_by_role("heading", name=re.compile("Lab 7: Spectra"))
        )

    sent = []
    for kind, size, seed in [("pdf", 257 * KB, 1), ("png", 206 * KB, 2)]:
        name, content = realfiles.make(tmp_path / "made", kind, size, seed)
        path = tmp_path / name
        path.write_bytes(content)
        card().locator("input[type=file]").set_input_files(str(path))
        card().get_by_role("button", name=re.compile("^Upload for")).click()
        expect(page.locator(".alert-success")).to_contain_text(f"{name} uploaded for Lab 7")
        sent.append(hashlib.sha256(content).hexdigest())

    too_large = tmp_path / "scan of the whole notebook.pdf"
    too_large.write_bytes(realfiles.random_pdf(20 * MB + 200 * KB))
    card().locator("input[type=file]").set_input_files(str(too_large))
    card().get_by_role("button", name=re.compile("^Upload for")).click()
    expect(page.locator(".alert-danger")).to_contain_text(
        "“scan of the whole notebook.pdf” is larger than the 20 MB limit for a file."
    )
    expect(card().locator("tbody tr")).to_have_count(2)
    with live_server.session() as db:
        stored = db.scalars(
            select(Submission.file_sha256)
            .where(Submission.assessment_id == spectra)
            .order_by(Submission.attempt)
        )
        assert list(stored) == sent
