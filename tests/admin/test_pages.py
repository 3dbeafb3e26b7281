"""Every admin page renders for an admin, and the forms keep input and show errors by the field."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from portal.models import AuditEntry, Meeting, Section, Term
from tests import factories
from tests.auth.test_rbac_matrix import all_cases, build_world
from tests.conftest import post_form
from tests.forms import rendered_form


def test_every_admin_page_renders_for_an_admin(app, client, data, login_as):
    with data() as db:
        world = build_world(db)
    login_as("admin")
    for endpoint, case in all_cases().items():
        if case.method != "GET" or not endpoint.startswith(("admin.", "audit.")):
            continue
        path = case.path.format(**{k: v for k, v in world.items() if k != "users"})
        response = client.get(path)
        assert response.status_code == 200, f"{endpoint}: {response.status_code}"


def _term_form(**overrides):
    values = {
        "code": "2031-SP",
        "name": "Spring 2031",
        "starts_on": "2031-01-10",
        "ends_on": "2031-05-20",
        "registration_opens_at": "2030-11-01T09:00",
        "registration_closes_at": "2031-01-20T17:00",
        "add_drop_deadline": "2031-01-31T17:00",
        "max_credits": "18",
    }
    values.update(overrides)
    return values


def test_term_create_edit_archive_and_audit(app, client, data, login_as):
    admin = login_as("admin")
    new_term = rendered_form(client.get("/admin/terms/new"), action="/admin/terms/new")
    response = new_term.submit(client, **_term_form())
    assert response.status_code == 302
    with data() as db:
        term = db.scalar(select(Term).where(Term.code == "2031-SP"))
        assert term is not None and term.registration_opens_at.tzinfo is not None
        term_id = term.id

    edit_path = f"/admin/terms/{term_id}/edit"
    edited = rendered_form(client.get(edit_path), action=edit_path)
    assert edited.values["code"] == ["2031-SP"]  # the form shows the saved term
    response = edited.submit(client, name="Spring term 2031")
    assert response.status_code == 302
    response = post_form(client, f"/admin/terms/{term_id}/archive", {"archive": "1"})
    assert response.status_code == 302
    with data() as db:
        assert db.get(Term, term_id).deleted_at is not None
        entries = db.scalars(
            select(AuditEntry)
            .where(AuditEntry.entity_id == str(term_id))
            .order_by(AuditEntry.created_at)
        ).all()
        assert [e.action for e in entries] == ["term.create", "term.update", "term.archive"]
        assert entries[1].before == {"name": "Spring 2031"}
        assert entries[1].after == {"name": "Spring term 2031"}
        assert all(e.actor_id == admin.id for e in entries)


def test_term_errors_are_shown_by_their_field_and_input_is_kept(app, client, data, login_as):
    with data() as db:
        factories.make_term(db, code="2031-FA", name="Fall 2031")
    login_as("admin")
    response = post_form(
        client,
        "/admin/terms/new",
        _term_form(code="2031-fa", name="Typed name", ends_on="2030-12-01"),
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "The term code 2031-FA is already used by Fall 2031." in page
    assert 'id="code-error"' in page and 'id="ends_on-error"' in page
    assert "The term cannot end before it starts." in page
    assert 'value="Typed name"' in page  # nothing typed is lost
    with data() as db:
        assert db.scalar(select(Term).where(Term.name == "Typed name")) is None


def test_course_code_clash_with_an_archived_course_says_restore(app, client, data, login_as):
    with data() as db:
        course = factories.make_course(db, code="OLD100", title="Old course")
        course.deleted_at = factories.now()
    login_as("admin")
    response = post_form(
        client,
        "/admin/courses/new",
        {"code": "old100", "title": "New", "department": "Physics", "credits": "3"},
    )
    page = response.get_data(as_text=True)
    assert "already used by Old course (archived: restore it instead" in page
    assert 'id="code-error"' in page


def test_section_create_with_staff_and_duplicate_number(app, client, data, login_as):
    with data() as db:
        term_id = factories.make_term(db, code="2032-FA").id
        course_id = factories.make_course(db, code="CS500").id
        instructor = factories.make_user(db, "instructor")
        lab = factories.make_user(db, "lab_staff")
        ids = instructor.id, lab.id
        names = instructor.username, lab.username
    login_as("admin")
    form = {
        "term_code": "2032-FA",
        "course_code": "cs500",
        "number": "001",
        "capacity": "30",
        "waitlist_capacity": "5",
        "room": "A-1",
        "instructor_username": names[0],
        "lab_staff_username": names[1],
    }
    response = post_form(client, "/admin/sections/new", form)
    assert response.status_code == 302, response.get_data(as_text=True)
    with data() as db:
        section = db.scalar(select(Section).where(Section.course_id == course_id))
        assert (section.instructor_id, section.lab_staff_id) == ids
        assert section.term_id == term_id

    response = post_form(client, "/admin/sections/new", form)
    page = response.get_data(as_text=True)
    assert "CS500 already has a section 001 in" in page and 'id="number-error"' in page

    form["lab_staff_username"] = names[0]
    form["number"] = "002"
    page = post_form(client, "/admin/sections/new", form).get_data(as_text=True)
    assert "is instructor, not lab staff" in page


def test_capacity_cannot_drop_below_enrolment_and_raising_it_promotes(app, client, data, login_as):
    from portal.registration.services import register

    with data() as db:
        section = factories.make_section(db, capacity=1, waitlist_capacity=2)
        for _ in range(3):
            register(db, factories.make_user(db, "student"), section, now=factories.now())
        assert (section.enrolled_count, section.waitlist_count) == (1, 2)
        section_id, number = section.id, section.number
    admin = login_as("admin")
    base = {"number": number, "room": "B-101", "instructor_username": "", "lab_staff_username": ""}
    page = post_form(
        client,
        f"/admin/sections/{section_id}/edit",
        {**base, "capacity": "0", "waitlist_capacity": "2"},
    ).get_data(as_text=True)
    assert "1 students are enrolled; capacity cannot be lower." in page

    response = post_form(
        client,
        f"/admin/sections/{section_id}/edit",
        {**base, "capacity": "3", "waitlist_capacity": "2"},
    )
    assert response.status_code == 302
    with data() as db:
        section = db.get(Section, section_id)
        assert (section.enrolled_count, section.waitlist_count) == (3, 0)
        entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "section.update"))
        assert entry.before == {"capacity": 1} and entry.after == {"capacity": 3}
        assert "2 promoted from the waitlist" in entry.summary
        promotions = db.scalars(
            select(AuditEntry).where(AuditEntry.action == "registration.promote")
        ).all()
        assert [p.actor_id for p in promotions] == [admin.id, admin.id]


def test_meeting_overlap_is_refused_next_to_the_field(app, client, data, login_as):
    with data() as db:
        section_id = factories.make_section(db, meetings=[(0, "09:00", "10:00")]).id
    login_as("admin")
    page = post_form(
        client,
        f"/admin/sections/{section_id}/meetings",
        {"weekday": "0", "starts_at": "09:30", "ends_at": "11:00", "kind": "lab"},
    ).get_data(as_text=True)
    assert "This overlaps the section&#39;s meeting Mon 09:00–10:00." in page
    assert 'value="09:30"' in page
    response = post_form(
        client,
        f"/admin/sections/{section_id}/meetings",
        {"weekday": "0", "starts_at": "10:00", "ends_at": "11:00", "kind": "lab"},
    )
    assert response.status_code == 302
    with data() as db:
        meetings = db.scalars(select(Meeting).where(Meeting.section_id == section_id)).all()
        assert len(meetings) == 2


def test_restoring_a_section_of_an_archived_term_is_refused(app, client, data, login_as):
    with data() as db:
        section = factories.make_section(db)
        section.deleted_at = section.term.deleted_at = factories.now()
        section_id = section.id
    login_as("admin")
    response = post_form(
        client, f"/admin/sections/{section_id}/archive", {"archive": "0"}, follow_redirects=True
    )
    assert "Restore the section&#39;s term and course first." in response.get_data(as_text=True)


def test_unknown_ids_are_404(app, client, login_as):
    login_as("admin")
    assert client.get(f"/admin/terms/{uuid.uuid4()}").status_code == 404
    assert client.get("/admin/imports/not-a-job").status_code == 404
    assert client.get("/admin/imports/templates/nothing.csv").status_code == 404


def test_course_list_search_hides_archived_courses(app, client, data, login_as):
    with data() as db:
        factories.make_course(db, code="ZZZ900", title="Zebra studies")
        factories.make_course(db, code="ZZZ901", title="Zebra history", deleted_at=factories.now())
    login_as("admin")
    page = client.get("/admin/courses?q=zebra").get_data(as_text=True)
    assert "ZZZ900" in page and "ZZZ901" not in page
    page = client.get("/admin/courses?q=zebra&archived=1").get_data(as_text=True)
    assert "ZZZ901" in page and "Restore" in page


def test_every_problem_of_a_term_form_is_shown_at_once_each_once(app, client, data, login_as):
    """A negative credit limit (the field's own check) does not hold back the end before the
    start and the registration closing before it opens (rules across fields): one round shows
    all three, each rule's message once, and nothing is saved."""
    login_as("admin")
    new_term = rendered_form(client.get("/admin/terms/new"), action="/admin/terms/new")
    response = new_term.submit(
        client,
        **_term_form(
            name="Typed name",
            max_credits="-3",
            ends_on="2030-12-01",
            registration_closes_at="2030-10-01T09:00",
        ),
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="max_credits-error"' in page
    assert page.count("between 1 and 60") == 1
    assert "The term cannot end before it starts." in page
    assert "Registration cannot close before it opens." in page
    assert 'value="Typed name"' in page
    # An empty name and a missing date alongside a rule across fields: all in the same round.
    response = new_term.submit(client, **_term_form(name="", starts_on="", ends_on="2030-12-01"))
    page = response.get_data(as_text=True)
    assert 'id="name-error"' in page and 'id="starts_on-error"' in page
    assert page.count("This field is required.") == 2  # the form's message, not a second one
    assert "The add/drop deadline cannot be before registration opens." not in page
    fixed = new_term.submit(client, **_term_form(name="Typed name"))
    assert fixed.status_code == 302
    with data() as db:
        assert db.scalar(select(func.count()).select_from(Term)) == 1


def test_a_course_form_shows_the_field_check_and_the_code_clash_together(
    app, client, data, login_as
):
    with data() as db:
        factories.make_course(db, code="CS100", title="Databases")
    login_as("admin")
    response = post_form(
        client,
        "/admin/courses/new",
        {"code": "cs100", "title": "New", "department": "Physics", "credits": "-2"},
    )
    page = response.get_data(as_text=True)
    assert "The course code CS100 is already used by Databases." in page
    assert 'id="credits-error"' in page and page.count("between 0 and 30") == 1


def test_a_section_form_shows_every_problem_at_once(app, client, data, login_as):
    with data() as db:
        term = factories.make_term(db, code="2032-FA")
        course = factories.make_course(db, code="CS500")
        taken = factories.make_section(db, course=course, term=term).number
    login_as("admin")
    response = post_form(
        client,
        "/admin/sections/new",
        {
            "term_code": "2032-FA",
            "course_code": "CS500",
            "number": taken,
            "capacity": "-1",
            "waitlist_capacity": "0",
            "room": "R" * 51,
        },
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="capacity-error"' in page and 'id="room-error"' in page
    assert 'id="number-error"' in page  # the clash, found by the service in the same round
    assert "R" * 51 in page  # refused whole, not cut to 50


def test_an_admin_search_is_made_with_the_whole_text_typed(app, client, data, login_as):
    """A search longer than 100 characters is not cut to its first 100 (which would list a
    course that does not match what was typed)."""
    title = "Introduction to " + "computational " * 8  # 128 characters
    with data() as db:
        factories.make_course(db, code="LNG100", title=title.strip())
    login_as("admin")
    whole = client.get("/admin/courses", query_string={"q": title.strip()})
    assert "LNG100" in whole.get_data(as_text=True)
    typed = title[:100] + "statistics"
    page = client.get("/admin/courses", query_string={"q": typed}).get_data(as_text=True)
    assert "LNG100" not in page and "No courses found" in page
