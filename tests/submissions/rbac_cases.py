from tests import factories
from tests.rbac import SIGNED_IN, Case

STAFF = {"instructor", "lab_staff", "admin"}

CASES = {
    "submissions.mine": Case("GET", "/lab-reports", {"student"}),
    "submissions.upload": Case(  # no file: "Choose a file", back to the page (303)
        "POST", "/assessments/{report_assessment_id}/submissions", {"student"}, expect=303
    ),
    # Every role may ask; the object check lets the owner and the section's staff through.
    "submissions.download": Case("GET", "/submissions/{submission_id}/download", SIGNED_IN),
    "submissions.section": Case("GET", "/sections/{section_id}/submissions", STAFF),
    "submissions.download_zip": Case(
        "GET", "/assessments/{report_assessment_id}/submissions.zip", STAFF
    ),
}


def setup(db, world):
    """A lab assessment of the world's section with one submission by the world's student."""
    import io
    from pathlib import Path

    from flask import current_app

    from portal.models import Section
    from portal.submissions import services, storage

    section = db.get(Section, world["section_id"])
    student = world["users"]["student"]
    assessment = factories.make_assessment(db, section, kind="lab", weight=0)
    upload_dir = Path(current_app.config["PORTAL"]["UPLOAD_DIR"])
    incoming = storage.receive(io.BytesIO(b"%PDF-1.4\n% report\n"), upload_dir, 1024 * 1024)
    submission = services.submit(
        db, student, assessment, incoming, "report.pdf", upload_dir=upload_dir, now=factories.now()
    )
    world["report_assessment_id"] = assessment.id
    world["submission_id"] = submission.id
