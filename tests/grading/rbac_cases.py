from tests import factories
from tests.rbac import Case

STAFF = {"instructor", "lab_staff", "admin"}
MANAGERS = {"instructor", "admin"}

CASES = {
    "grading.gradebook": Case("GET", "/sections/{section_id}/gradebook", STAFF),
    "grading.save_gradebook": Case("POST", "/sections/{section_id}/gradebook", STAFF),
    # The field names the cell (m.<student>.<assessment>); here a made-up one: 400, not 403.
    "grading.save_mark": Case(
        "POST", "/sections/{section_id}/gradebook/cell", STAFF, {"m.x.y": "7"}, expect=400
    ),
    "grading.finalise_check": Case("GET", "/sections/{section_id}/finalise/check", MANAGERS),
    "grading.finalise": Case("POST", "/sections/{section_id}/finalise", MANAGERS),
    "grading.assessments": Case("GET", "/sections/{section_id}/assessments", MANAGERS),
    "grading.edit_assessment": Case("GET", "/assessments/{lab_assessment_id}/edit", MANAGERS),
    "grading.delete_assessment": Case(
        "POST", "/assessments/{spare_assessment_id}/delete", MANAGERS
    ),
    # Runs after the delete: the Undo restores the spare assessment.
    "grading.restore_assessment": Case(
        "POST", "/assessments/{spare_assessment_id}/restore", MANAGERS
    ),
    "grading.scale": Case("GET", "/grade-scale", {"admin"}),
    "grading.my_grades": Case("GET", "/grades", {"student"}),
    "grading.my_transcript": Case("GET", "/transcript", {"student"}),
    "grading.transcript": Case("GET", "/students/{student_id}/transcript", {"admin"}),
}


def setup(db, world):
    from portal.models import Section

    section = db.get(Section, world["section_id"])
    world["student_id"] = world["users"]["student"].id
    world["lab_assessment_id"] = factories.make_assessment(db, section, kind="lab", weight=40).id
    world["exam_assessment_id"] = factories.make_assessment(db, section, kind="exam", weight=50).id
    world["spare_assessment_id"] = factories.make_assessment(
        db, section, kind="assignment", weight=10
    ).id
