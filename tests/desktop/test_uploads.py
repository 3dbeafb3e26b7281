"""Lab reports of real size through the desktop's own server (waitress, behind the launch
token): a photo and a 15 MB PDF are stored byte for byte, and a file a little over the 20 MB
limit is refused with the limit named."""

from __future__ import annotations

import hashlib
import html
import uuid
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from portal.models import Submission
from tests import factories, realfiles
from tests.desktop.conftest import log_in
from tests.desktop.launcher_process import PortalClient

MB = realfiles.MB


def _lab(data_dir: Path) -> tuple[str, str]:
    """A student in a section with a lab assessment, written to the copy's SQLite file."""
    engine = create_engine(f"sqlite:///{data_dir / 'portal.db'}")
    try:
        with Session(engine) as db:
            staff = factories.make_user(db, "lab_staff")
            section = factories.make_section(db, lab_staff_id=staff.id)
            assessment = factories.make_assessment(db, section, kind="lab", name="Lab 3")
            student = factories.make_user(db, "student")
            factories.enrol(db, student, section)
            db.commit()
            return student.username, str(assessment.id)
    finally:
        engine.dispose()


def _upload(client: PortalClient, assessment_id: str, name: str, content: bytes):
    token = client.csrf_token("/lab-reports")
    boundary = uuid.uuid4().hex
    body = b"".join(
        [
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
            f"{token}\r\n".encode(),
            f'--{boundary}\r\nContent-Disposition: form-data; name="report"; '
            f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode(),
            content,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    return client.request(
        "POST",
        f"/assessments/{assessment_id}/submissions",
        body=body,
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Origin": client.origin,
            "Referer": f"{client.origin}/lab-reports",
        },
    )


def test_lab_reports_of_real_size_through_the_desktop_server(
    start_launcher, admin_data_dir, tmp_path
):
    username, assessment_id = _lab(admin_data_dir)
    launcher = start_launcher(admin_data_dir)
    client = launcher.client()
    log_in(client, username, factories.PASSWORD)
    sent = []
    for kind, size, seed in [("jpg", 3 * MB, 1), ("pdf", 15 * MB, 2)]:
        name, content = realfiles.make(tmp_path / "files", kind, size, seed)
        answer = _upload(client, assessment_id, name, content)
        assert answer.status == 303, answer.text[:500]
        page = html.unescape(client.follow("/lab-reports").text)
        assert f"{name} uploaded for Lab 3" in page
        sent.append(hashlib.sha256(content).hexdigest())

    over = realfiles.random_pdf(20 * MB + 64 * 1024)
    answer = _upload(client, assessment_id, "scan.pdf", over)
    assert answer.status == 303, answer.text[:500]
    page = html.unescape(client.follow("/lab-reports").text)
    assert "“scan.pdf” is larger than the 20 MB limit for a file." in page

    engine = create_engine(f"sqlite:///{admin_data_dir / 'portal.db'}")
    try:
        with Session(engine) as db:
            stored = db.scalars(select(Submission.file_sha256).order_by(Submission.attempt))
            assert list(stored) == sent
    finally:
        engine.dispose()
