"""The import pages: upload, dry-run report, progress, import, one-time passwords."""

from __future__ import annotations

import io
from pathlib import Path

from sqlalchemy import func, select

from portal import jobs
from portal.admin import import_jobs
from portal.admin.import_jobs import JobStore
from portal.models import AuditEntry, Course, User, utcnow
from tests import factories
from tests.conftest import post_form

COURSES = "code,title,credits,department\n"


def upload(client, kind, text, name="file.csv"):
    data = text.encode() if isinstance(text, str) else text
    response = post_form(
        client,
        "/admin/imports",
        {"kind": kind, "file": (io.BytesIO(data), name)},
        token_from="/admin/imports",
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    job_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    assert jobs.wait(job_id, timeout=60)
    return job_id


def test_dry_run_report_then_fixed_file_imports(app, client, data, login_as):
    login_as("admin")
    bad = COURSES + "GOOD1,Fine,3,Physics\nBAD1,Broken,many,Physics\nGOOD1,Again,3,Physics\n"
    job_id = upload(client, "courses", bad, "courses.csv")
    page = client.get(f"/admin/imports/{job_id}").get_data(as_text=True)
    assert "2 problems to fix" in page
    assert "&#39;many&#39; is not a whole number." in page
    assert "Duplicate course code GOOD1: also on line 2." in page
    assert f"/admin/imports/{job_id}/run" not in page  # no Import button
    assert f"· {len(bad.encode())} Bytes ·" in page  # a size a person reads, not "N bytes"
    report = client.get(f"/admin/imports/{job_id}/report.csv").get_data(as_text=True)
    assert report.splitlines()[0] == "\ufeffline,column,severity,problem"
    assert "3,credits,error,'many' is not a whole number." in report

    # The import of a file with problems is refused.
    post_form(client, f"/admin/imports/{job_id}/run", token_from="/admin/imports")
    with data() as db:
        assert db.scalar(select(func.count()).select_from(Course)) == 0

    fixed = COURSES + "GOOD1,Fine,3,Physics\nGOOD2,Mended,4,Physics\n"
    job_id = upload(client, "courses", fixed, "courses-fixed.csv")
    page = client.get(f"/admin/imports/{job_id}").get_data(as_text=True)
    assert "The dry run found no problems" in page and "Import 2 courses" in page
    with data() as db:
        assert db.scalar(select(func.count()).select_from(Course)) == 0

    response = post_form(client, f"/admin/imports/{job_id}/run", token_from="/admin/imports")
    assert response.status_code == 302
    assert jobs.wait(job_id, timeout=60)
    page = client.get(f"/admin/imports/{job_id}").get_data(as_text=True)
    assert "Imported 2 courses." in page
    with data() as db:
        assert set(db.scalars(select(Course.code))) == {"GOOD1", "GOOD2"}
        entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "import.courses"))
        assert entry.summary.startswith("Imported 2 courses from courses-fixed.csv (sha256 ")

    # A second click on Import starts nothing.
    response = post_form(
        client, f"/admin/imports/{job_id}/run", token_from="/admin/imports", follow_redirects=True
    )
    assert "cannot be imported" in response.get_data(as_text=True)


def test_progress_fragment_polls_while_running_and_refreshes_when_done(app, client, login_as):
    login_as("admin")
    store = JobStore(Path(app.config["PORTAL"]["SHARED_DIR"]) / "imports")
    job = store.create("courses", "c.csv", b"code,title,credits,department\n", "admin")
    job.phase, job.step, job.done, job.total = "checking", "Checking rows", 250, 1000
    store.save(job)
    response = client.get(f"/admin/imports/{job.id}/progress")
    fragment = response.get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in fragment
    assert '<progress class="import-progress"' in fragment and 'value="250"' in fragment
    assert "Checking rows: 250 of 1,000 (25%)" in fragment
    assert "HX-Refresh" not in response.headers

    job.phase = "checked"
    store.save(job)
    response = client.get(f"/admin/imports/{job.id}/progress")
    assert response.headers["HX-Refresh"] == "true"
    assert "hx-trigger" not in response.get_data(as_text=True)


def test_polling_the_progress_is_not_activity(app, client, login_as):
    """The page polls every second while a job runs: that must not keep an idle admin signed
    in (the idle log-out). Opening a page does."""
    login_as("admin")
    store = JobStore(Path(app.config["PORTAL"]["SHARED_DIR"]) / "imports")
    job = store.create("courses", "c.csv", COURSES.encode(), "admin")
    job.phase = "checking"
    store.save(job)
    page = client.get(f"/admin/imports/{job.id}").get_data(as_text=True)
    assert "data-passive" in page  # the page's own idle timer leaves it out too (portal.js)
    with client.session_transaction() as session:
        session["last_seen"] -= 600
        before = session["last_seen"]
    assert client.get(f"/admin/imports/{job.id}/progress").status_code == 200
    with client.session_transaction() as session:
        assert session["last_seen"] == before
    client.get(f"/admin/imports/{job.id}")
    with client.session_transaction() as session:
        assert session["last_seen"] > before


def test_one_time_passwords_can_be_downloaded_once(app, client, data, login_as):
    login_as("admin")
    text = "username,full_name,role,student_number\nfresh1,Fresh One,student,S555001\n"
    job_id = upload(client, "users", text, "users.csv")
    post_form(client, f"/admin/imports/{job_id}/run", token_from="/admin/imports")
    assert jobs.wait(job_id, timeout=60)
    page = client.get(f"/admin/imports/{job_id}").get_data(as_text=True)
    assert "Download one-time passwords" in page
    response = post_form(
        client, f"/admin/imports/{job_id}/passwords.csv", token_from="/admin/imports"
    )
    assert response.headers["Content-Disposition"].startswith("attachment;")
    lines = response.get_data(as_text=True).splitlines()
    assert lines[0] == "\ufeffusername,one_time_password"
    username, password = lines[1].split(",")
    assert username == "fresh1"
    from portal.accounts.services import authenticate

    with data() as db:
        assert authenticate(db, "fresh1", password, now=utcnow()) is not None
    again = post_form(
        client,
        f"/admin/imports/{job_id}/passwords.csv",
        token_from="/admin/imports",
        follow_redirects=True,
    )
    assert "already downloaded" in again.get_data(as_text=True)
    assert not list((Path(app.config["PORTAL"]["SHARED_DIR"]) / "imports" / job_id).glob("pass*"))


def test_an_import_that_fails_on_the_way_writes_nothing(app, data):
    """Rows checked clean, then a rule refuses one during the import: rollback, report kept."""
    store = JobStore(Path(app.config["PORTAL"]["SHARED_DIR"]) / "imports")
    with data() as db:
        section = factories.make_section(db, capacity=1, waitlist_capacity=0)
        section.number = "001"
        a, b = factories.make_user(db, "student"), factories.make_user(db, "student")
        rows = "".join(
            f"{u.username},{section.term.code},{section.course.code},001\n" for u in (a, b)
        )
    text = "username,term_code,course_code,section_number\n" + rows
    job = store.create("registrations", "regs.csv", text.encode(), "admin")
    with data() as db:
        state = import_jobs.execute(store, job.id, "import", db, actor=None, now=factories.now())
    assert state.phase == "checked" and state.ok is False and state.imported == 0
    assert "Nothing was imported" in state.summary
    report = store.report(job.id)
    assert [p.line for p in report.problems] == [3]
    with data() as db:
        assert db.scalar(select(func.count()).select_from(User).where(User.role == "student")) == 2
        from portal.models import Registration

        assert db.scalar(select(func.count()).select_from(Registration)) == 0


def test_job_ids_never_become_paths(app, client, login_as):
    login_as("admin")
    for bad in ("..%2F..%2Fetc", "not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        assert client.get(f"/admin/imports/{bad}").status_code == 404


def test_upload_form_requires_a_file(app, client, login_as):
    login_as("admin")
    response = post_form(client, "/admin/imports", {"kind": "users"}, token_from="/admin/imports")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Choose a CSV file to upload." in page


def test_import_page_shows_the_file_size_in_kilobytes(app, client, data, login_as):
    login_as("admin")
    rows = "".join(f"K{n:04d},Course {n},3,Physics\n" for n in range(200))
    job_id = upload(client, "courses", COURSES + rows, "courses.csv")
    page = client.get(f"/admin/imports/{job_id}").get_data(as_text=True)
    kilobytes = len((COURSES + rows).encode()) / 1000
    assert f"· {kilobytes:.1f} kB ·" in page and " bytes ·" not in page


def test_one_time_passwords_are_typed_as_downloaded():
    """A generated password is letters and digits only: the download never shows it with the
    apostrophe a spreadsheet-safe cell puts before -, =, + or @ (which a person would type)."""
    from portal.admin.csv_import import one_time_password
    from portal.admin.exports import safe_cell

    for _ in range(500):
        password = one_time_password()
        assert len(password) == 12 and password.isalnum()
        assert safe_cell(password) == password
