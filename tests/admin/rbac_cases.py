from pathlib import Path

from flask import current_app

from portal.admin import csv_import
from portal.admin.import_jobs import JobStore
from tests import factories
from tests.rbac import Case

ADMIN = {"admin"}
ROSTER = {"admin", "instructor", "lab_staff"}  # staff: their own sections only

CASES = {
    "admin.dashboard": Case("GET", "/admin/", ADMIN),
    "admin.terms": Case("GET", "/admin/terms", ADMIN),
    "admin.term_create": Case("GET", "/admin/terms/new", ADMIN),
    "admin.term": Case("GET", "/admin/terms/{term_id}", ADMIN),
    "admin.term_edit": Case("GET", "/admin/terms/{admin_term_id}/edit", ADMIN),
    "admin.term_archive": Case(
        "POST", "/admin/terms/{admin_term_id}/archive", ADMIN, data={"archive": "1"}
    ),
    "admin.courses": Case("GET", "/admin/courses", ADMIN),
    "admin.course_create": Case("GET", "/admin/courses/new", ADMIN),
    "admin.course_edit": Case("GET", "/admin/courses/{admin_course_id}/edit", ADMIN),
    "admin.course_archive": Case(
        "POST", "/admin/courses/{admin_course_id}/archive", ADMIN, data={"archive": "1"}
    ),
    "admin.section_create": Case("GET", "/admin/sections/new", ADMIN),
    "admin.section": Case("GET", "/admin/sections/{section_id}", ADMIN),
    "admin.section_edit": Case("GET", "/admin/sections/{admin_section_id}/edit", ADMIN),
    "admin.section_archive": Case(
        "POST", "/admin/sections/{admin_section_id}/archive", ADMIN, data={"archive": "1"}
    ),
    # No fields: the form is shown again with its errors.
    "admin.meeting_create": Case(
        "POST", "/admin/sections/{admin_section_id}/meetings", ADMIN, expect=200
    ),
    "admin.meeting_edit": Case("GET", "/admin/meetings/{admin_meeting_id}/edit", ADMIN),
    "admin.meeting_archive": Case(
        "POST", "/admin/meetings/{admin_meeting_id}/archive", ADMIN, data={"archive": "1"}
    ),
    "admin.roster_export": Case("GET", "/admin/sections/{section_id}/roster.csv", ROSTER),
    "admin.gradebook_export": Case("GET", "/admin/sections/{section_id}/gradebook.csv", ROSTER),
    "admin.attendance_export": Case("GET", "/admin/sections/{section_id}/attendance.csv", ROSTER),
    "admin.imports": Case("GET", "/admin/imports", ADMIN),
    "admin.import_job": Case("GET", "/admin/imports/{import_job_id}", ADMIN),
    "admin.import_progress": Case("GET", "/admin/imports/{import_job_id}/progress", ADMIN),
    "admin.import_run": Case("POST", "/admin/imports/{import_job_id}/run", ADMIN),
    "admin.import_report": Case("GET", "/admin/imports/{import_job_id}/report.csv", ADMIN),
    "admin.import_passwords": Case("POST", "/admin/imports/{import_job_id}/passwords.csv", ADMIN),
    "admin.import_template": Case("GET", "/admin/imports/templates/users.csv", ADMIN),
}


def setup(db, world):
    """Objects of its own for the admin's edits and archives, and an import job on disk."""
    section = factories.make_section(db)
    world["admin_term_id"] = section.term_id
    world["admin_course_id"] = section.course_id
    world["admin_section_id"] = section.id
    world["admin_meeting_id"] = section.meetings[0].id
    store = JobStore(Path(current_app.config["PORTAL"]["SHARED_DIR"]) / "imports")
    data = b"code,title,credits,department\n"
    job = store.create("courses", "courses.csv", data, "admin")
    # Checked (the dry run), so that its report can be downloaded.
    store.save_report(job.id, csv_import.check_file(db, "courses", data, now=factories.now()))
    world["import_job_id"] = job.id
