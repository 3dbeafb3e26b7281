from datetime import date, timedelta

from tests import factories
from tests.rbac import Case

# A date inside the factories' terms (they start today).
IN_TERM = (date.today() + timedelta(days=7)).isoformat()

STAFF = {"instructor", "lab_staff", "admin"}

CASES = {
    "attendance.section": Case("GET", "/sections/{section_id}/attendance", STAFF),
    "attendance.create_session": Case(
        "POST",
        "/sections/{section_id}/lab-sessions",
        STAFF,
        {"held_on": IN_TERM, "starts_at": "14:00", "ends_at": "16:00"},
    ),
    "attendance.edit_session": Case("GET", "/lab-sessions/{lab_session_id}/edit", STAFF),
    "attendance.delete_session": Case("POST", "/lab-sessions/{spare_lab_session_id}/delete", STAFF),
    # Runs after the delete: the Undo restores the spare lab session.
    "attendance.restore_session": Case(
        "POST", "/lab-sessions/{spare_lab_session_id}/restore", STAFF
    ),
    "attendance.take": Case("GET", "/lab-sessions/{lab_session_id}", STAFF),
    "attendance.mark": Case(
        "POST", "/lab-sessions/{lab_session_id}/students/{student_id}", STAFF, {"status": "late"}
    ),
    "attendance.mark_remaining": Case(
        "POST", "/lab-sessions/{lab_session_id}/mark-remaining", STAFF
    ),
}


def setup(db, world):
    from portal.models import Section

    section = db.get(Section, world["section_id"])
    world["student_id"] = world["users"]["student"].id
    world["lab_session_id"] = factories.make_lab_session(db, section).id
    world["spare_lab_session_id"] = factories.make_lab_session(db, section).id
