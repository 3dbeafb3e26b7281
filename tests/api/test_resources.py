"""Each API resource as each role, with tokens: exact statuses, and the same rules (and the same
refusals) as the pages, because the same services decide. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from portal.extensions import db as _db
from portal.models import AuditEntry, Registration, Section
from tests import factories
from tests.conftest import BOTH_DATABASES

pytestmark = BOTH_DATABASES
V1 = "/api/v1"


# --- Catalogue ------------------------------------------------------------------------------------


def test_catalogue_search_filters_pages_and_links(app, api_as, world):
    with app.app_context():
        term = factories.make_term(_db.session, code="2031-FA")
        for n in range(5):
            course = factories.make_course(
                _db.session, code=f"CHEM{n}", title=f"Chemistry {n}", department="Chemistry"
            )
            factories.make_section(_db.session, course=course, term=term)
        _db.session.commit()
    api = api_as("student")
    first = api.get(f"{V1}/courses?q=chem&department=Chemistry&term=2031-FA&per_page=2")
    assert first.status_code == 200
    body = first.json
    assert [c["code"] for c in body["items"]] == ["CHEM0", "CHEM1"]
    assert (body["total"], body["pages"], body["page"]) == (5, 3, 1)
    assert body["items"][0]["sections"][0]["term_code"] == "2031-FA"
    assert body["links"]["prev"] is None
    assert body["links"]["next"].endswith("page=2&per_page=2")
    assert 'rel="next"' in first.headers["Link"]
    last = api.get(body["links"]["last"])
    assert [c["code"] for c in last.json["items"]] == ["CHEM4"]
    assert last.json["links"]["next"] is None
    # The total comes with the page's rows; past the last page and with no match, it is counted.
    assert (last.json["total"], last.json["pages"], last.json["page"]) == (5, 3, 3)
    beyond = api.get(f"{V1}/courses?q=chem&department=Chemistry&page=9&per_page=2")
    assert beyond.status_code == 200 and beyond.json["items"] == []
    assert (beyond.json["total"], beyond.json["pages"]) == (5, 3)
    nothing = api.get(f"{V1}/courses?q=no-such-course")
    assert (nothing.json["items"], nothing.json["total"], nothing.json["pages"]) == ([], 0, 1)


def test_a_course_and_a_section_read_as_the_pages_show_them(api_as, world):
    api = api_as("lab_staff")
    course = api.get(f"{V1}/courses/{world.course_code}")
    assert course.status_code == 200
    assert course.json["code"] == world.course_code
    section_ids = [s["id"] for s in course.json["sections"]]
    assert str(world.section_id) in section_ids
    section = api.get(f"{V1}/sections/{world.section_id}")
    assert section.status_code == 200
    assert section.json["enrolled"] == 1 and section.json["seats_left"] == 29
    assert api.get(f"{V1}/courses/NOPE999").status_code == 404


def test_conditional_get_answers_304_until_the_data_changes(app, api_as, world):
    api = api_as("student")
    first = api.get(f"{V1}/sections/{world.section_id}")
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, no-cache"
    same = api.get(f"{V1}/sections/{world.section_id}", headers={"If-None-Match": etag})
    assert same.status_code == 304 and same.get_data() == b""
    with app.app_context():
        _db.session.get(Section, world.section_id).room = "C-202"
        _db.session.commit()
    changed = api.get(f"{V1}/sections/{world.section_id}", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json["room"] == "C-202"
    assert changed.headers["ETag"] != etag


# --- Registrations --------------------------------------------------------------------------------


def test_register_waitlist_and_drop_with_the_registration_rules(app, api_as, world):
    with app.app_context():
        full = factories.make_section(_db.session, capacity=1, waitlist_capacity=1)
        other = factories.make_user(_db.session, "student")
        factories.enrol(_db.session, other, full)
        _db.session.commit()
        full_id = full.id
    api = api_as("student")
    enrolled = api.post(f"{V1}/me/registrations", json={"section_id": str(world.other_section_id)})
    assert enrolled.status_code == 201 and enrolled.json["status"] == "enrolled"
    waitlisted = api.post(f"{V1}/me/registrations", json={"section_id": str(full_id)})
    assert waitlisted.status_code == 201
    assert waitlisted.json["status"] == "waitlisted" and waitlisted.json["waitlist_position"] == 1
    mine = api.get(f"{V1}/me/registrations")
    assert {r["status"] for r in mine.json["items"]} == {"enrolled", "waitlisted"}
    dropped = api.delete(f"{V1}/me/registrations/{enrolled.json['id']}")
    assert dropped.status_code == 200
    assert dropped.json["registration"]["status"] == "dropped"
    again = api.delete(f"{V1}/me/registrations/{enrolled.json['id']}")
    assert again.status_code == 409
    assert "already dropped" in again.json["detail"]
    with app.app_context():
        assert _db.session.get(Section, world.other_section_id).enrolled_count == 0


def test_registration_refusals_match_the_page_rules(app, api_as, world):
    with app.app_context():
        closed = factories.make_section(
            _db.session, term=factories.make_term(_db.session, state="closed")
        )
        _db.session.commit()
        closed_id = closed.id
    api = api_as("student")
    refused = api.post(f"{V1}/me/registrations", json={"section_id": str(closed_id)})
    assert refused.status_code == 409
    assert refused.json["type"] == "urn:campus-portal:problem:registration-refused"
    assert "closed on" in refused.json["detail"]
    missing = api.post(
        f"{V1}/me/registrations", json={"section_id": "00000000-0000-4000-8000-000000000000"}
    )
    assert missing.status_code == 404


def test_someone_else_s_registration_cannot_be_dropped(app, api_as, world):
    with app.app_context():
        other = factories.make_user(_db.session, "student")
        registration = factories.enrol(
            _db.session, other, _db.session.get(Section, world.other_section_id)
        )
        _db.session.commit()
        registration_id = registration.id
    assert api_as("student").delete(f"{V1}/me/registrations/{registration_id}").status_code == 404
    with app.app_context():
        assert _db.session.get(Registration, registration_id).status == "enrolled"


def test_only_students_have_registrations(api_as):
    for role in ("instructor", "lab_staff", "admin"):
        assert api_as(role).get(f"{V1}/me/registrations").status_code == 403
        assert api_as(role).get(f"{V1}/me/grades").status_code == 403


# --- Marks and grades -----------------------------------------------------------------------------


def test_a_student_sees_their_own_marks_and_grades(api_as, world):
    response = api_as("student").get(f"{V1}/me/grades")
    assert response.status_code == 200
    (course,) = response.json["courses"]
    assert course["section_id"] == str(world.section_id)
    marks = {a["id"]: a["points"] for a in course["assessments"]}
    assert marks == {str(world.lab_assessment_id): 7.5, str(world.exam_assessment_id): None}
    assert course["percentage"] == 30.0  # 7.5/10 x 40%; the unmarked exam counts 0
    assert course["so_far"] == 75.0
    # The provisional letter is on the marked work (75%: C), not on 30% (an F).
    assert (course["provisional_letter"], course["marked_share"]) == ("C", 40.0)


def test_the_gradebook_shows_what_each_staff_role_may_grade(api_as, world):
    instructor = api_as("instructor").get(f"{V1}/sections/{world.section_id}/gradebook")
    assert instructor.status_code == 200
    assert {a["kind"] for a in instructor.json["assessments"]} == {"lab", "exam"}
    assert instructor.json["rows"][0]["percentage"] == 30.0
    lab_staff = api_as("lab_staff").get(f"{V1}/sections/{world.section_id}/gradebook")
    assert lab_staff.status_code == 200
    assert {a["kind"] for a in lab_staff.json["assessments"]} == {"lab"}
    assert lab_staff.json["shows_totals"] is False
    assert lab_staff.json["rows"][0]["percentage"] is None
    assert api_as("student").get(f"{V1}/sections/{world.section_id}/gradebook").status_code == 403


def test_staff_of_another_section_are_refused_with_403(app, api_as, world):
    with app.app_context():
        outsider = factories.make_user(_db.session, "instructor")
        from portal.profile.services import create_token

        secret = create_token(
            _db.session, outsider, "x", expires_in_days=None, now=factories.now()
        ).secret
        _db.session.commit()
    api = api_as(None)
    api.headers = {"Authorization": f"Bearer {secret}"}
    response = api.get(f"{V1}/sections/{world.section_id}/gradebook")
    assert response.status_code == 403
    assert response.json["type"] == "urn:campus-portal:problem:forbidden"
    assert api.get(f"{V1}/sections/{world.section_id}/lab-sessions").status_code == 403
    assert api.get(f"{V1}/submissions/{world.submission_id}/file").status_code == 403


def test_marks_follow_the_gradebook_rules(app, api_as, world):
    student = world.users["student"]
    exam_mark = f"{V1}/assessments/{world.exam_assessment_id}/marks/{student}"
    lab_mark = f"{V1}/assessments/{world.lab_assessment_id}/marks/{student}"
    saved = api_as("instructor").put(exam_mark, json={"points": 8})
    assert saved.status_code == 200
    assert saved.json["points"] == 8.0 and saved.json["percentage"] == 78.0
    too_many = api_as("instructor").put(exam_mark, json={"points": 11})
    assert too_many.status_code == 422 and "At most 10 points" in too_many.json["detail"]
    assert api_as("lab_staff").put(exam_mark, json={"points": 5}).status_code == 403
    assert api_as("lab_staff").put(lab_mark, json={"points": 9}).status_code == 200
    cleared = api_as("instructor").put(lab_mark, json={"points": None})
    assert cleared.status_code == 200 and cleared.json["points"] is None
    assert api_as("student").put(lab_mark, json={"points": 10}).status_code == 403


def test_a_mark_with_more_decimal_places_than_kept_is_refused_not_rounded(app, api_as, world):
    path = f"{V1}/assessments/{world.exam_assessment_id}/marks/{world.users['student']}"
    api = api_as("instructor")
    assert api.put(path, json={"points": 7.5}).status_code == 200
    refused = api.put(path, json={"points": 1.125})
    assert refused.status_code == 422
    assert refused.mimetype == "application/problem+json"
    assert refused.json["detail"] == (
        "Marks are kept to 2 decimal places: 1.125 has more. Enter 1.12 or 1.13."
    )
    shown = api.get(f"{V1}/sections/{world.section_id}/gradebook").json
    marks = [m for row in shown["rows"] for m in row["marks"]]
    assert {"assessment_id": str(world.exam_assessment_id), "points": 7.5} in marks


def test_after_finalising_only_an_admin_with_a_reason_changes_a_mark(app, api_as, world):
    with app.app_context():
        from portal.grading.services import finalise_section
        from portal.models import User

        section = _db.session.get(Section, world.section_id)
        instructor = _db.session.get(User, world.users["instructor"])
        finalise_section(_db.session, instructor, section, now=factories.now())
        _db.session.commit()
    path = f"{V1}/assessments/{world.lab_assessment_id}/marks/{world.users['student']}"
    locked = api_as("instructor").put(path, json={"points": 9})
    assert locked.status_code == 409
    no_reason = api_as("admin").put(path, json={"points": 9})
    assert no_reason.status_code == 422
    changed = api_as("admin").put(path, json={"points": 9, "reason": "re-marked on appeal"})
    assert changed.status_code == 200 and changed.json["final_grade"] is not None
    with app.app_context():
        entry = _db.session.scalar(
            select(AuditEntry).where(AuditEntry.action == "grades.mark_changed_after_final")
        )
        assert entry.reason == "re-marked on appeal"


# --- Attendance -----------------------------------------------------------------------------------


def test_lab_sessions_and_attendance(api_as, world):
    api = api_as("lab_staff")
    in_term = (date.today() + timedelta(days=7)).isoformat()  # factory terms start today
    created = api.post(
        f"{V1}/sections/{world.section_id}/lab-sessions",
        json={"held_on": in_term, "starts_at": "09:00:00", "ends_at": "11:00:00"},
    )
    assert created.status_code == 201 and created.json["room"] == "B-101"
    backwards = api.post(
        f"{V1}/sections/{world.section_id}/lab-sessions",
        json={"held_on": in_term, "starts_at": "11:00:00", "ends_at": "09:00:00"},
    )
    assert backwards.status_code == 422
    outside = api.post(
        f"{V1}/sections/{world.section_id}/lab-sessions",
        json={"held_on": "2031-02-03", "starts_at": "09:00:00", "ends_at": "11:00:00"},
    )
    assert outside.status_code == 422  # outside the section's term
    listed = api.get(f"{V1}/sections/{world.section_id}/lab-sessions")
    assert len(listed.json["items"]) == 2
    student = world.users["student"]
    path = f"{V1}/lab-sessions/{world.lab_session_id}/attendance"
    assert api.put(f"{path}/{student}", json={"status": "late"}).status_code == 200
    assert api.put(f"{path}/{student}", json={"status": "asleep"}).status_code == 422
    sheet = api.get(path)
    assert sheet.status_code == 200
    assert sheet.json["lines"][0]["status"] == "late"
    assert sheet.json["counts"]["late"] == 1 and sheet.json["counts"]["rate"] == 100.0
    stranger = factories.now().strftime("00000000-0000-4000-8000-%Y%m%d0000")
    assert api.put(f"{path}/{stranger}", json={"status": "present"}).status_code == 422


# --- Submissions ----------------------------------------------------------------------------------


def test_submissions_metadata_and_download(app, api_as, world):
    mine = api_as("student").get(f"{V1}/me/submissions")
    assert mine.status_code == 200
    (item,) = mine.json["items"]
    (attempt,) = item["attempts"]
    assert attempt["original_name"] == "report.pdf" and attempt["attempt"] == 1
    download = api_as("student").get(attempt["download"])
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "application/pdf"
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.headers["Cache-Control"] == "no-store"
    assert "ETag" not in download.headers
    staff = api_as("lab_staff").get(f"{V1}/sections/{world.section_id}/submissions")
    assert staff.status_code == 200
    (collected,) = staff.json["assessments"]
    assert collected["students"][0]["latest"]["id"] == attempt["id"]
    with app.app_context():
        classmate = factories.make_user(_db.session, "student")
        from portal.profile.services import create_token

        secret = create_token(
            _db.session, classmate, "x", expires_in_days=None, now=factories.now()
        ).secret
        _db.session.commit()
    other = api_as(None)
    other.headers = {"Authorization": f"Bearer {secret}"}
    assert other.get(attempt["download"]).status_code == 403


# --- Administration -------------------------------------------------------------------------------


def test_admin_users_create_edit_deactivate_with_audit(app, api_as, world):
    api = api_as("admin")
    created = api.post(
        f"{V1}/admin/users",
        json={
            "username": "new.student",
            "full_name": "New Student",
            "role": "student",
            "student_number": "S9000001",
            "password": "long-enough-pass",
        },
    )
    assert created.status_code == 201
    duplicate = api.post(
        f"{V1}/admin/users",
        json={
            "username": "new.student",
            "full_name": "Again",
            "role": "instructor",
            "password": "long-enough-pass",
        },
    )
    assert duplicate.status_code == 422 and "already taken" in duplicate.json["detail"]
    user_id = created.json["id"]
    renamed = api.patch(f"{V1}/admin/users/{user_id}", json={"full_name": "Renamed Student"})
    assert renamed.status_code == 200 and renamed.json["full_name"] == "Renamed Student"
    off = api.patch(f"{V1}/admin/users/{user_id}", json={"active": False})
    assert off.status_code == 200 and off.json["active"] is False
    own = api.patch(f"{V1}/admin/users/{world.users['admin']}", json={"active": False})
    assert own.status_code == 422
    listed = api.get(f"{V1}/admin/users?q=new.student")
    assert [u["username"] for u in listed.json["items"]] == ["new.student"]
    with app.app_context():
        actions = set(
            _db.session.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == user_id))
        )
    assert actions == {"account.create", "account.update", "account.deactivate"}


def test_admin_terms_courses_and_sections(api_as, world):
    api = api_as("admin")
    term = {
        "code": "2032-SP",
        "name": "Spring 2032",
        "starts_on": "2032-01-10",
        "ends_on": "2032-05-10",
        "registration_opens_at": "2031-12-01T08:00:00+00:00",
        "registration_closes_at": "2032-01-20T08:00:00+00:00",
        "add_drop_deadline": "2032-01-25T08:00:00+00:00",
    }
    assert api.post(f"{V1}/admin/terms", json=term).status_code == 201
    clash = api.post(f"{V1}/admin/terms", json=term)
    assert clash.status_code == 422
    assert clash.json["errors"] == [
        {"location": "json", "field": "code", "message": clash.json["errors"][0]["message"]}
    ]
    naive = api.post(
        f"{V1}/admin/terms",
        json={**term, "code": "X1", "registration_opens_at": "2031-12-01T08:00:00"},
    )
    assert naive.status_code == 422 and naive.json["errors"][0]["field"] == "registration_opens_at"
    bad_course = api.post(
        f"{V1}/admin/courses",
        json={"code": "bad code", "title": "", "credits": 99, "department": "X"},
    )
    assert bad_course.status_code == 422
    assert {e["field"] for e in bad_course.json["errors"]} == {"code", "title", "credits"}
    course = api.post(
        f"{V1}/admin/courses",
        json={"code": "GEO101", "title": "Geology", "credits": 4, "department": "Earth"},
    )
    assert course.status_code == 201
    section = api.post(
        f"{V1}/admin/sections",
        json={
            "term_code": "2032-SP",
            "course_code": "GEO101",
            "number": "001",
            "capacity": 2,
            "instructor_username": world.usernames["instructor"],
        },
    )
    assert section.status_code == 201
    assert section.json["instructor_username"] == world.usernames["instructor"]
    shrink = api.put(
        f"{V1}/admin/sections/{world.section_id}",
        json={"term_code": "", "course_code": "", "number": "001", "capacity": 0},
    )
    assert shrink.status_code == 422
    assert shrink.json["errors"][0]["field"] == "capacity"
    for role in ("student", "instructor", "lab_staff"):
        assert api_as(role).post(f"{V1}/admin/courses", json={}).status_code == 403


def test_admin_archives_and_restores_with_the_pages_rules(app, api_as, world):
    api = api_as("admin")
    section = f"{V1}/admin/sections/{world.section_id}/archive"
    term = f"{V1}/admin/terms/{world.term_id}/archive"
    archived = api.post(section, json={"archived": True})
    assert archived.status_code == 200 and archived.json["archived"] is True
    assert "still enrolled" in archived.json["message"]
    assert api_as("student").get(f"{V1}/sections/{world.section_id}").status_code == 404
    assert api.post(term, json={"archived": True}).status_code == 200
    refused = api.post(section, json={"archived": False})
    assert refused.status_code == 422 and "term and course first" in refused.json["detail"]
    assert api.post(term, json={"archived": False}).status_code == 200
    restored = api.post(section, json={"archived": False})
    assert restored.status_code == 200 and restored.json["archived"] is False
    assert api_as("instructor").post(section, json={"archived": True}).status_code == 403
    with app.app_context():
        actions = list(
            _db.session.scalars(
                select(AuditEntry.action).where(AuditEntry.action.like("section.%"))
            )
        )
    assert actions.count("section.archive") == 1 and actions.count("section.restore") == 1
