"""Lab reports of real size and kind through the upload page: PDFs, photos, Word documents,
archives and random content from 100 KB up to the 20 MB limit are stored byte for byte; one byte
over it, a body far over it, a form with too much text and a form with too many parts are each
refused with the reason that is true (tests/realfiles.py makes the files)."""

from __future__ import annotations

import hashlib
import html
import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.extensions import db as _db
from portal.models import Submission
from portal.submissions import storage
from tests import realfiles
from tests.conftest import csrf_token, make_app, post_form
from tests.submissions.test_uploads import _client_as, _world

KB, MB = realfiles.KB, realfiles.MB
LIMIT = 20 * MB

# (kind, size, seed): several sizes per kind so that the file's 64 KiB reads end differently;
# the 150 KB .. 15 MB PDFs, 206 KB PNG and 259 KB JPEG are the sizes reported refused.
CASES = [
    ("pdf", 100 * KB, 1),
    ("pdf", 150 * KB, 2),
    ("pdf", 257 * KB, 3),
    ("pdf", 700 * KB, 4),
    ("pdf", 2 * MB, 5),
    ("pdf", 15 * MB, 6),
    ("png", 206 * KB, 7),
    ("png", 1 * MB, 8),
    ("png", 5 * MB, 9),
    ("jpg", 259 * KB, 10),
    ("jpg", 3 * MB, 11),
    ("docx", 500 * KB, 12),
    ("zip", 8 * MB, 13),
    *[("random", 300 * KB, seed) for seed in range(20, 32)],
    ("random", 150 * KB, 40),
    ("random", 700 * KB, 41),
    ("random", 19 * MB + 512 * KB, 42),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("real-files")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("portal")
    app = make_app(tmp_path, f"sqlite:///{tmp_path / 'portal.db'}")
    assert app.config["PORTAL"]["MAX_UPLOAD_MB"] == 20
    world = _world(app)
    student = _client_as(app, world["student"])
    yield {"app": app, "world": world, "student": student, "token": csrf_token(student)}
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()


def _send(lab, name: str, data: bytes, **more_fields):
    return lab["student"].post(
        f"/assessments/{lab['world']['assessment']}/submissions",
        data={"csrf_token": lab["token"], "report": (io.BytesIO(data), name), **more_fields},
        content_type="multipart/form-data",
        follow_redirects=True,
    )


def _read(lab, name: str, data: bytes, **more_fields) -> str:
    """The page shown after the upload, as a person reads it."""
    return html.unescape(_send(lab, name, data, **more_fields).get_data(as_text=True))


def _count(lab) -> int:
    with lab["app"].app_context():
        return _db.session.scalar(select(func.count()).select_from(Submission)) or 0


def _stored_sha256(lab) -> str:
    with lab["app"].app_context():
        newest = _db.session.scalars(
            select(Submission).order_by(Submission.attempt.desc()).limit(1)
        ).one()
        stored = storage.blob_path(
            Path(lab["app"].config["PORTAL"]["UPLOAD_DIR"]), newest.file_sha256
        )
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == newest.file_sha256
        return newest.file_sha256


def _incoming_left(lab) -> list[Path]:
    incoming = Path(lab["app"].config["PORTAL"]["UPLOAD_DIR"]) / "incoming"
    return [path for path in incoming.glob("*") if path.is_file()]


@pytest.mark.parametrize(("kind", "size", "seed"), CASES, ids=lambda v: str(v))
def test_real_files_up_to_the_limit_are_stored(lab, files, kind, size, seed):
    name, data = realfiles.make(files, kind, size, seed)
    before = _count(lab)
    page = _send(lab, name, data)
    text = html.unescape(page.get_data(as_text=True))
    assert page.status_code == 200
    assert f"{name} uploaded for Lab 3" in text, text[text.find("alert") :][:400]
    assert "larger than" not in text
    assert _count(lab) == before + 1
    assert _stored_sha256(lab) == hashlib.sha256(data).hexdigest()
    assert _incoming_left(lab) == []


def test_a_file_of_exactly_the_limit_is_stored_and_one_byte_more_is_not(lab, files):
    report = realfiles.pdf(files, 19 * MB, seed=50)
    at_limit = realfiles.exactly(report, LIMIT)
    page = _read(lab, "Lab report final.pdf", at_limit)
    assert "Lab report final.pdf uploaded for Lab 3" in page
    assert _stored_sha256(lab) == hashlib.sha256(at_limit).hexdigest()

    before = _count(lab)
    over = realfiles.exactly(report, LIMIT + 1)
    page = _read(lab, "Lab report final.pdf", over)
    assert (
        "“Lab report final.pdf” is larger than the 20 MB limit for a file. Make it smaller" in page
    )
    assert _count(lab) == before
    assert _incoming_left(lab) == []


def test_a_body_far_over_the_limit_is_refused_before_it_is_read(lab):
    before = _count(lab)
    page = _read(lab, "scan.pdf", realfiles.random_pdf(25 * MB))
    assert "The upload is 25 MB, larger than the 20 MB limit for a file." in page
    assert _count(lab) == before
    assert _incoming_left(lab) == []


def test_too_much_text_in_the_form_is_not_called_a_large_file(lab, files):
    _, report = realfiles.make(files, "pdf", 300 * KB, 3)
    before = _count(lab)
    page = _read(lab, "Lab report.pdf", report, note="x" * (600 * KB))
    assert "The form's text fields are larger than 500 KB together (the file is not counted)" in (
        page
    )
    assert "limit for a file" not in page
    assert _count(lab) == before
    assert _incoming_left(lab) == []


def test_too_many_parts_are_named_as_such(lab, files):
    _, report = realfiles.make(files, "pdf", 100 * KB, 1)
    before = _count(lab)
    extra = {f"field{number}": "1" for number in range(120)}
    page = _read(lab, "Lab report.pdf", report, **extra)
    assert "The form has more than 100 parts (fields and files)" in page
    assert "limit for a file" not in page
    assert _count(lab) == before
    assert _incoming_left(lab) == []


# --- The CSV import parses its form with the same limits -----------------------------------------


@pytest.fixture
def admin(app, login_as, client):
    login_as("admin")
    return client


def test_csv_import_of_real_size_and_its_refusals(admin):
    rows = "".join(f"s{n:06d},Student {n},s{n:06d}@campus.example.edu\n" for n in range(40_000))
    csv = ("username,full_name,email\n" + rows).encode()
    assert len(csv) > 1 * MB
    token = csrf_token(admin, "/admin/imports")

    def send(data: bytes, **more):
        return admin.post(
            "/admin/imports",
            data={
                "csrf_token": token,
                "kind": "users",
                "file": (io.BytesIO(data), "students.csv"),
                **more,
            },
            content_type="multipart/form-data",
        )

    accepted = send(csv)
    assert accepted.status_code == 302 and "/admin/imports/" in accepted.headers["Location"]

    too_big = send(csv * 20)  # 25 MB and more
    assert too_big.status_code == 413
    assert "larger than the 20 MB limit for a file" in html.unescape(too_big.get_data(as_text=True))

    too_many = send(csv, **{f"field{number}": "1" for number in range(120)})
    assert too_many.status_code == 413
    assert "more than 100 parts" in html.unescape(too_many.get_data(as_text=True))


def test_a_plain_form_post_is_untouched(admin):
    """Forms without files (urlencoded) still parse as before."""
    response = post_form(admin, "/admin/imports", {"kind": "users"})
    assert response.status_code == 200
    assert "Choose a CSV file to upload." in response.get_data(as_text=True)
