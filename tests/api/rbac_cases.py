"""The API in the route-by-role matrix: each case states the exact status for the roles it
allows (anonymous callers get 401 and other roles 403 under /api). Calls use the browser session
here, with the CSRF header on state-changing ones; tests/api covers the same with tokens."""

from datetime import UTC, datetime, timedelta

from tests.rbac import PUBLIC, SIGNED_IN, Case

STAFF = {"instructor", "lab_staff", "admin"}
STUDENT = {"student"}
ADMIN = {"admin"}
V1 = "/api/v1"

_soon = datetime.now(UTC) + timedelta(days=10)
TERM = {
    "code": "RBAC-T",
    "name": "Matrix term",
    "starts_on": "2031-01-10",
    "ends_on": "2031-05-10",
    "registration_opens_at": "2030-12-01T08:00:00+00:00",
    "registration_closes_at": "2031-01-20T08:00:00+00:00",
    "add_drop_deadline": "2031-01-25T08:00:00+00:00",
    "max_credits": 18,
}
COURSE = {"code": "RBAC101", "title": "Matrix course", "credits": 3, "department": "Tests"}

CASES = {
    "api.openapi": Case("GET", f"{V1}/openapi.json", PUBLIC, expect=200),
    "api.docs": Case("GET", f"{V1}/docs", PUBLIC, expect=200),
    "api_catalogue.me": Case("GET", f"{V1}/me", SIGNED_IN, expect=200),
    "api_catalogue.terms": Case("GET", f"{V1}/terms", SIGNED_IN, expect=200),
    "api_catalogue.courses": Case("GET", f"{V1}/courses?q=PHY", SIGNED_IN, expect=200),
    "api_catalogue.course": Case("GET", f"{V1}/courses/{{course_code}}", SIGNED_IN, expect=200),
    "api_catalogue.section": Case("GET", f"{V1}/sections/{{section_id}}", SIGNED_IN, expect=200),
    "api_registrations.mine": Case("GET", f"{V1}/me/registrations", STUDENT, expect=200),
    "api_registrations.register": Case(
        "POST",
        f"{V1}/me/registrations",
        STUDENT,
        expect=201,
        json={"section_id": "{other_section_id}"},
    ),
    "api_registrations.drop": Case(
        "DELETE", f"{V1}/me/registrations/{{registration_id}}", STUDENT, expect=200
    ),
    "api_grades.my_grades": Case("GET", f"{V1}/me/grades", STUDENT, expect=200),
    "api_grades.gradebook": Case(
        "GET", f"{V1}/sections/{{section_id}}/gradebook", STAFF, expect=200
    ),
    "api_grades.set_mark": Case(
        "PUT",
        f"{V1}/assessments/{{report_assessment_id}}/marks/{{student_id}}",
        STAFF,
        expect=200,
        json={"points": 5},
    ),
    "api_attendance.lab_sessions": Case(
        "GET", f"{V1}/sections/{{section_id}}/lab-sessions", STAFF, expect=200
    ),
    "api_attendance.create_lab_session": Case(
        "POST",
        f"{V1}/sections/{{section_id}}/lab-sessions",
        STAFF,
        expect=201,
        # Inside the term of the matrix's section (factory terms start today).
        json={
            "held_on": (datetime.now(UTC).date() + timedelta(days=7)).isoformat(),
            "starts_at": "09:00",
            "ends_at": "11:00",
        },
    ),
    "api_attendance.sheet": Case(
        "GET", f"{V1}/lab-sessions/{{lab_session_id}}/attendance", STAFF, expect=200
    ),
    "api_attendance.record": Case(
        "PUT",
        f"{V1}/lab-sessions/{{lab_session_id}}/attendance/{{student_id}}",
        STAFF,
        expect=200,
        json={"status": "present"},
    ),
    "api_submissions.mine": Case("GET", f"{V1}/me/submissions", STUDENT, expect=200),
    "api_submissions.section": Case(
        "GET", f"{V1}/sections/{{section_id}}/submissions", STAFF, expect=200
    ),
    "api_submissions.download": Case(
        "GET", f"{V1}/submissions/{{submission_id}}/file", SIGNED_IN, expect=200
    ),
    "api_admin.users": Case("GET", f"{V1}/admin/users?role=student", ADMIN, expect=200),
    "api_admin.create_user": Case(
        "POST",
        f"{V1}/admin/users",
        ADMIN,
        expect=201,
        json={
            "username": "rbac.new",
            "full_name": "New Person",
            "role": "instructor",
            "password": "a-long-password",
        },
    ),
    "api_admin.get_user": Case("GET", f"{V1}/admin/users/{{other_user_id}}", ADMIN, expect=200),
    "api_admin.update_user": Case(
        "PATCH",
        f"{V1}/admin/users/{{other_user_id}}",
        ADMIN,
        expect=200,
        json={"full_name": "Renamed Person"},
    ),
    "api_admin.terms": Case("GET", f"{V1}/admin/terms", ADMIN, expect=200),
    "api_admin.create_term": Case("POST", f"{V1}/admin/terms", ADMIN, expect=201, json=TERM),
    "api_admin.get_term": Case("GET", f"{V1}/admin/terms/{{term_id}}", ADMIN, expect=200),
    "api_admin.update_term": Case(
        "PUT",
        f"{V1}/admin/terms/{{admin_term_id}}",
        ADMIN,
        expect=200,
        json={**TERM, "code": "RBAC-T2"},
    ),
    "api_admin.term_sections": Case(
        "GET", f"{V1}/admin/terms/{{term_id}}/sections", ADMIN, expect=200
    ),
    "api_admin.courses": Case("GET", f"{V1}/admin/courses", ADMIN, expect=200),
    "api_admin.create_course": Case("POST", f"{V1}/admin/courses", ADMIN, expect=201, json=COURSE),
    "api_admin.get_course": Case("GET", f"{V1}/admin/courses/{{course_id}}", ADMIN, expect=200),
    "api_admin.update_course": Case(
        "PUT",
        f"{V1}/admin/courses/{{admin_course_id}}",
        ADMIN,
        expect=200,
        json={**COURSE, "code": "RBAC102"},
    ),
    "api_admin.create_section": Case(
        "POST",
        f"{V1}/admin/sections",
        ADMIN,
        expect=201,
        json={
            "term_code": "{term_code}",
            "course_code": "{course_code}",
            "number": "R1",
            "capacity": 10,
        },
    ),
    "api_admin.get_section": Case("GET", f"{V1}/admin/sections/{{section_id}}", ADMIN, expect=200),
    "api_admin.archive_term": Case(
        "POST",
        f"{V1}/admin/terms/{{admin_term_id}}/archive",
        ADMIN,
        expect=200,
        json={"archived": True},
    ),
    "api_admin.archive_course": Case(
        "POST",
        f"{V1}/admin/courses/{{admin_course_id}}/archive",
        ADMIN,
        expect=200,
        json={"archived": True},
    ),
    "api_admin.archive_section": Case(
        "POST",
        f"{V1}/admin/sections/{{admin_section_id}}/archive",
        ADMIN,
        expect=200,
        json={"archived": True},
    ),
    "api_admin.update_section": Case(
        "PUT",
        f"{V1}/admin/sections/{{section_id}}",
        ADMIN,
        expect=200,
        json={"term_code": "", "course_code": "", "number": "R2", "capacity": 40},
    ),
}


def setup(db, world):
    from portal.models import Term

    world["student_id"] = world["users"]["student"].id
    world["term_code"] = db.get(Term, world["term_id"]).code
