"""Lab-report uploads: size limit while streaming, types by content and extension, names that
never reach the filesystem, history, late flags, and safe downloads."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.errors import FileTooLarge, ValidationError
from portal.extensions import db as _db
from portal.models import StoredFile, Submission
from portal.submissions import services, storage
from tests import factories
from tests.conftest import csrf_token, make_app, post_form

PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
EXE = b"MZ\x90\x00" + b"\x00" * 64


def docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.csv", "a,b\n1,2\n")
    return buffer.getvalue()


# --- Pure checks ----------------------------------------------------------------------------------


def _incoming(tmp_path: Path, data: bytes, limit: int = 1024 * 1024) -> storage.IncomingFile:
    incoming = storage.receive(io.BytesIO(data), tmp_path, limit)
    incoming.finish()
    return incoming


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("report.pdf", PDF, "pdf"),
        ("photo.PNG", PNG, "png"),
        ("scan.jpeg", JPEG, "jpeg"),
        ("scan.jpg", JPEG, "jpeg"),
        ("report.docx", docx_bytes(), "docx"),
        ("data.zip", zip_bytes(), "zip"),
        ("notes.txt", "Résumé of the lab, 3 µm\n".encode(), "text"),
        ("notes.md", b"# Lab 2\n\n- done\n", "text"),
    ],
)
def test_allowed_types_by_extension_and_content(tmp_path, name, data, kind):
    incoming = _incoming(tmp_path, data)
    assert storage.check_type(name, incoming.path, incoming.head) == kind


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("report.pdf", PNG, "named .pdf but its content is a PNG image"),
        ("report.pdf", EXE, "content is not a PDF document"),
        ("report.docx", zip_bytes(), "content is a ZIP archive"),
        ("notes.txt", b"text\x00with\x00nul", "content is not plain text"),
        ("notes.txt", b"\xff\xfe broken utf-8", "content is not plain text"),
        ("tool.exe", EXE, "only PDF, PNG, JPEG"),
        ("x", PDF, "only PDF, PNG, JPEG"),
        ("report.pdf.exe", PDF, "only PDF"),
    ],
)
def test_lying_extensions_and_other_types_are_refused(tmp_path, name, data, message):
    incoming = _incoming(tmp_path, data)
    with pytest.raises(ValidationError, match=message):
        storage.check_type(name, incoming.path, incoming.head)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("../../x", "x"),
        ("..\\..\\windows\\system32\\evil.pdf", "evil.pdf"),
        ("/etc/passwd", "passwd"),
        ("..", "upload"),
        ("", "upload"),
        ("re\x00port\n.pdf", "report.pdf"),
        (".hidden.pdf", "hidden.pdf"),
    ],
)
def test_display_names_are_reduced_to_a_last_part(raw, shown):
    assert storage.display_name(raw) == shown


def test_sink_stops_at_the_limit_and_removes_its_temporary_file(tmp_path):
    incoming = storage.IncomingFile(tmp_path, max_bytes=100)
    incoming.write(b"a" * 60)
    with pytest.raises(FileTooLarge, match="larger than"):
        incoming.write(b"a" * 60)
    assert not incoming.path.exists()
    assert list((tmp_path / "incoming").iterdir()) == []


def test_blob_paths_derive_from_the_hash_only(tmp_path):
    digest = "ab" * 32
    assert storage.blob_path(tmp_path, digest) == tmp_path / "sha256" / "ab" / "ab" / digest
    for bad in ("../../etc/passwd", "AB" * 32, "ab" * 31, "x" * 64):
        with pytest.raises(ValueError):
            storage.blob_path(tmp_path, bad)


# --- The service ----------------------------------------------------------------------------------


@pytest.fixture
def lab(db, app):
    staff = factories.make_user(db, "lab_staff")
    section = factories.make_section(db, lab_staff_id=staff.id)
    assessment = factories.make_assessment(
        db, section, kind="lab", due_at=factories.now() + timedelta(days=1)
    )
    student = factories.make_user(db, "student")
    factories.enrol(db, student, section)
    upload_dir = Path(app.config["PORTAL"]["UPLOAD_DIR"])
    return {
        "staff": staff,
        "section": section,
        "assessment": assessment,
        "student": student,
        "dir": upload_dir,
    }


def _submit(db, lab, data: bytes, name: str, now=None):
    incoming = storage.receive(io.BytesIO(data), lab["dir"], 1024 * 1024)
    return services.submit(
        db,
        lab["student"],
        lab["assessment"],
        incoming,
        name,
        upload_dir=lab["dir"],
        now=now or factories.now(),
    )


def test_files_are_stored_by_hash_and_resubmissions_keep_history(db, lab):
    first = _submit(db, lab, PDF, "../../x.pdf")
    second = _submit(db, lab, PDF, "final.pdf")
    third = _submit(db, lab, PNG, "graph.png")
    assert [s.attempt for s in (first, second, third)] == [1, 2, 3]
    assert first.original_name == "x.pdf"
    assert first.file_sha256 == second.file_sha256  # same content, stored once
    assert db.scalar(select(func.count()).select_from(StoredFile)) == 2
    stored = sorted(p for p in lab["dir"].rglob("*") if p.is_file())
    assert [p.name for p in stored] == sorted({first.file_sha256, third.file_sha256})
    assert all(p.relative_to(lab["dir"]).parts[0] == "sha256" for p in stored)
    assert not any(p.name == "x.pdf" for p in lab["dir"].parent.rglob("*"))
    assert services.file_path(lab["dir"], first).read_bytes() == PDF


def test_late_after_the_due_time(db, lab):
    on_time = _submit(db, lab, PDF, "a.pdf")
    late = _submit(db, lab, PDF, "b.pdf", now=factories.now() + timedelta(days=2))
    assert (on_time.late, late.late) == (False, True)


def test_refused_upload_leaves_nothing_behind(db, lab):
    with pytest.raises(ValidationError, match="PNG image"):
        _submit(db, lab, PNG, "report.pdf")
    with pytest.raises(ValidationError, match="empty"):
        _submit(db, lab, b"", "report.pdf")
    assert [p for p in lab["dir"].rglob("*") if p.is_file()] == []
    assert db.scalar(select(func.count()).select_from(Submission)) == 0


def test_students_of_other_sections_cannot_submit(db, lab):
    from portal.errors import Forbidden

    outsider = factories.make_user(db, "student")
    incoming = storage.receive(io.BytesIO(PDF), lab["dir"], 1024)
    with pytest.raises(Forbidden):
        services.submit(
            db,
            outsider,
            lab["assessment"],
            incoming,
            "a.pdf",
            upload_dir=lab["dir"],
            now=factories.now(),
        )


# --- Over HTTP ------------------------------------------------------------------------------------


@pytest.fixture
def small_limit_app(tmp_path):
    app = make_app(tmp_path, f"sqlite:///{tmp_path / 'portal.db'}", MAX_UPLOAD_MB=1)
    yield app
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()


def _world(app):
    with app.app_context():
        session = _db.session
        staff = factories.make_user(session, "lab_staff")
        section = factories.make_section(session, lab_staff_id=staff.id)
        assessment = factories.make_assessment(session, section, kind="lab", name="Lab 3")
        exam = factories.make_assessment(session, section, kind="exam", name="Exam")
        student = factories.make_user(session, "student")
        other = factories.make_user(session, "student")
        factories.enrol(session, student, section)
        factories.enrol(session, other, section)
        session.commit()
        return {
            "staff": staff.username,
            "student": student.username,
            "other": other.username,
            "assessment": assessment.id,
            "exam": exam.id,
            "section": section.id,
        }


def _client_as(app, username):
    client = app.test_client()
    post_form(client, "/login", {"username": username, "password": factories.PASSWORD})
    return client


def _upload(client, assessment_id, data: bytes, name: str, token: str | None = None):
    return client.post(
        f"/assessments/{assessment_id}/submissions",
        data={
            "csrf_token": token or csrf_token(client, "/lab-reports"),
            "report": (io.BytesIO(data), name),
        },
        content_type="multipart/form-data",
        follow_redirects=True,
    )


def test_upload_and_download_with_safe_headers(small_limit_app):
    app = small_limit_app
    world = _world(app)
    student = _client_as(app, world["student"])
    page = _upload(student, world["assessment"], PDF, "Lab report – v2.pdf")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "uploaded for Lab 3" in text and "attempt 1" in text
    with app.app_context():
        submission = _db.session.scalar(select(Submission))
        submission_id = submission.id
    download = student.get(f"/submissions/{submission_id}/download")
    assert download.status_code == 200
    assert download.data == PDF
    assert download.headers["Content-Type"] == "application/pdf"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    other = _client_as(app, world["other"])
    assert other.get(f"/submissions/{submission_id}/download").status_code == 403
    staff = _client_as(app, world["staff"])
    assert staff.get(f"/submissions/{submission_id}/download").data == PDF
    archive = staff.get(f"/assessments/{world['assessment']}/submissions.zip")
    assert archive.headers["Content-Disposition"].startswith("attachment;")
    with zipfile.ZipFile(io.BytesIO(archive.data)) as zipped:
        names = zipped.namelist()
        assert "manifest.csv" in names
        (entry,) = [n for n in names if n != "manifest.csv"]
        assert entry.endswith("_attempt-1.pdf") and "/" not in entry and "report" not in entry
        assert zipped.read(entry) == PDF
        assert "Lab report – v2.pdf" in zipped.read("manifest.csv").decode()
    # Lab staff collect lab work only.
    assert staff.get(f"/assessments/{world['exam']}/submissions.zip").status_code == 403


def test_oversize_upload_is_refused_with_a_clear_message(small_limit_app):
    app = small_limit_app
    world = _world(app)
    student = _client_as(app, world["student"])
    just_over = PDF + b"0" * (1024 * 1024)  # over 1 MB, under MAX_CONTENT_LENGTH (2 MB)
    page = _upload(student, world["assessment"], just_over, "big.pdf").get_data(as_text=True)
    assert "larger than the 1 MB limit" in page
    way_over = PDF + b"0" * (3 * 1024 * 1024)  # over MAX_CONTENT_LENGTH as well
    page = _upload(student, world["assessment"], way_over, "huge.pdf").get_data(as_text=True)
    assert "larger than the 1 MB limit" in page
    upload_dir = Path(app.config["PORTAL"]["UPLOAD_DIR"])
    assert [p for p in upload_dir.rglob("*") if p.is_file()] == []
    with app.app_context():
        assert _db.session.scalar(select(func.count()).select_from(Submission)) == 0


def test_lying_extension_over_http(small_limit_app):
    app = small_limit_app
    world = _world(app)
    student = _client_as(app, world["student"])
    page = _upload(student, world["assessment"], PNG, "../../report.pdf").get_data(as_text=True)
    assert "named .pdf but its content is a PNG image" in page
    with app.app_context():
        assert _db.session.scalar(select(func.count()).select_from(Submission)) == 0


def test_upload_without_csrf_token_is_refused(small_limit_app):
    app = small_limit_app
    world = _world(app)
    student = _client_as(app, world["student"])
    response = _upload(student, world["assessment"], PDF, "a.pdf", token="forged")
    assert response.status_code == 400
    upload_dir = Path(app.config["PORTAL"]["UPLOAD_DIR"])
    assert [p for p in upload_dir.rglob("*") if p.is_file()] == []


def test_upload_dir_is_outside_the_static_folder(app):
    upload_dir = Path(app.config["PORTAL"]["UPLOAD_DIR"]).resolve()
    static = Path(app.static_folder).resolve()
    assert static not in upload_dir.parents and upload_dir != static
