from __future__ import annotations

from datetime import timedelta

from portal.extensions import db as _db
from portal.models import Registration
from tests import factories
from tests.conftest import post_form
from tests.forms import rendered_form, rendered_forms


def _seed(app):
    with app.app_context():
        session = _db.session
        term = factories.make_term(session, code="2027-S", name="Spring 2027")
        other_term = factories.make_term(session, code="2027-F", name="Fall 2027")
        quantum = factories.make_course(
            session, code="PHY301", title="Quantum Mechanics", department="Physics"
        )
        poetry = factories.make_course(
            session, code="ENG210", title="Modern Poetry", department="English"
        )
        factories.make_section(session, course=quantum, term=term, capacity=1)
        factories.make_section(session, course=poetry, term=other_term)
        session.commit()


def test_search_by_text_term_and_department(app, client, login_as):
    _seed(app)
    login_as("student")
    assert "Quantum Mechanics" in client.get("/courses?q=quantum").get_data(as_text=True)
    assert "Quantum Mechanics" in client.get("/courses?q=phy301").get_data(as_text=True)
    by_term = client.get("/courses?term=2027-F").get_data(as_text=True)
    assert "Modern Poetry" in by_term and "Quantum Mechanics" not in by_term
    by_department = client.get("/courses?department=Physics").get_data(as_text=True)
    assert "Quantum Mechanics" in by_department and "Modern Poetry" not in by_department
    assert "No courses match" in client.get("/courses?q=zzzz").get_data(as_text=True)


def test_search_pages_tell_the_total_of_every_page(app, client, login_as):
    with app.app_context():
        term = factories.make_term(_db.session, code="2027-S")
        for n in range(3):
            course = factories.make_course(_db.session, code=f"BIO10{n}", title=f"Biology {n}")
            factories.make_section(_db.session, course=course, term=term)
        _db.session.commit()
    app.config["PAGE_SIZE"] = 2
    login_as("student")
    first = client.get("/courses?q=bio&term=all").get_data(as_text=True)
    assert "3 courses found" in first and "BIO101" in first and "BIO102" not in first
    second = client.get("/courses?q=bio&term=all&page=2").get_data(as_text=True)
    assert "3 courses found" in second and "BIO102" in second and "BIO101" not in second
    assert "No courses match" in client.get("/courses?q=bio&term=all&page=3").get_data(as_text=True)


def test_section_page_shows_seats_and_register_button(app, client, login_as):
    _seed(app)
    login_as("student")
    course_page = client.get("/courses/PHY301").get_data(as_text=True)
    assert "1 of 1 seat left" in course_page
    section_link = course_page.split('href="/sections/')[1].split('"')[0]
    section_page = client.get(f"/sections/{section_link}").get_data(as_text=True)
    assert "Register" in section_page and "Sun " in section_page
    page = client.get(f"/sections/{section_link}")
    registered = rendered_form(page, action=f"/sections/{section_link}/register").submit(client)
    assert registered.status_code == 302
    after = client.get(f"/sections/{section_link}")
    assert "Drop this section" in after.get_data(as_text=True) and "Full" in after.get_data(
        as_text=True
    )
    drop = next(form for form in rendered_forms(after) if form.action.endswith("/drop"))
    dropped = drop.submit(client)
    assert dropped.status_code == 302
    assert "Register" in client.get(f"/sections/{section_link}").get_data(as_text=True)


def test_unknown_course_is_a_404(client, login_as):
    login_as("student")
    assert client.get("/courses/NOPE999").status_code == 404


def test_registration_refusal_is_flashed(app, client, login_as):
    with app.app_context():
        section = factories.make_section(
            _db.session, term=factories.make_term(_db.session, state="closed")
        )
        _db.session.commit()
        section_id = section.id
    login_as("student")
    response = post_form(
        client, f"/sections/{section_id}/register", token_from="/courses", follow_redirects=True
    )
    assert "closed on" in response.get_data(as_text=True)


def test_student_cannot_drop_someone_elses_registration(app, client, login_as):
    with app.app_context():
        from portal.registration.services import register

        other = factories.make_user(_db.session)
        registration = register(
            _db.session, other, factories.make_section(_db.session), now=factories.now()
        )
        _db.session.commit()
        registration_id = registration.id
    login_as("student")
    response = post_form(client, f"/registrations/{registration_id}/drop", token_from="/courses")
    assert response.status_code == 404


def test_the_catalogue_opens_on_the_current_term(app, client, login_as):
    with app.app_context():
        session = _db.session
        today = factories.now().date()
        past = factories.make_term(
            session,
            code="OLD-1",
            name="Old term",
            starts_on=today - timedelta(days=300),
            ends_on=today - timedelta(days=200),
        )
        current = factories.make_term(
            session,
            code="NOW-1",
            name="This term",
            starts_on=today - timedelta(days=10),
            ends_on=today + timedelta(days=80),
        )
        old_course = factories.make_course(session, code="HIS101", title="Old Empires")
        new_course = factories.make_course(session, code="HIS102", title="New Republics")
        factories.make_section(session, course=old_course, term=past)
        factories.make_section(session, course=new_course, term=current)
        session.commit()
    login_as("student")
    first_look = client.get("/courses").get_data(as_text=True)
    assert "New Republics" in first_look and "Old Empires" not in first_look
    assert '<option value="NOW-1" selected>' in first_look
    every_term = client.get("/courses?term=all").get_data(as_text=True)
    assert "New Republics" in every_term and "Old Empires" in every_term
    assert '<option value="all" selected>' in every_term


def test_register_is_offered_only_where_it_can_succeed(app, client, login_as):
    student = login_as("student")
    with app.app_context():
        session = _db.session
        closed = factories.make_section(session, term=factories.make_term(session, state="closed"))
        term = factories.make_term(session)
        course = factories.make_course(session, code="MAT250", title="Topology")
        held = factories.make_section(session, course=course, term=term)
        other = factories.make_section(session, course=course, term=term)
        factories.enrol(session, session.merge(student), held)
        session.commit()
        closed_id, other_id, held_id, held_label = closed.id, other.id, held.id, held.label
    page = client.get(f"/sections/{closed_id}").get_data(as_text=True)
    assert ">Register<" not in page and "closed on" in page
    page = client.get(f"/sections/{other_id}").get_data(as_text=True)
    assert ">Register<" not in page
    assert f"You are already registered in {held_label}, another section of MAT250." in page
    held_page = client.get(f"/sections/{held_id}").get_data(as_text=True)
    assert f'data-confirm="Drop {held_label}?' in held_page
    mine = client.get("/registrations").get_data(as_text=True)
    assert f'data-confirm="Drop {held_label}?' in mine


def test_percent_and_underscore_in_a_search_match_themselves(app, client, login_as):
    with app.app_context():
        session = _db.session
        term = factories.make_term(session)
        for code, title in (
            ("STA100", "100% Practical"),
            ("CS220", "Data_Science"),
            ("ART1", "Art"),
        ):
            factories.make_section(
                session, course=factories.make_course(session, code=code, title=title), term=term
            )
        factories.make_user(session, "student", username="ann_lee", full_name="Ann Lee")
        factories.make_user(session, "student", username="annxlee", full_name="Ann X")
        session.commit()
    login_as("admin")
    percent = client.get("/courses?q=%25&term=all").get_data(as_text=True)
    assert "100% Practical" in percent and "Data_Science" not in percent and ">ART1 " not in percent
    underscore = client.get("/courses?q=_&term=all").get_data(as_text=True)
    assert "Data_Science" in underscore and "100% Practical" not in underscore
    users = client.get("/admin/users/?q=ann_").get_data(as_text=True)
    assert "ann_lee" in users and "annxlee" not in users
    courses = client.get("/admin/courses?q=%25").get_data(as_text=True)
    assert "STA100" in courses and "CS220" not in courses


def test_drop_is_offered_only_where_it_can_succeed_else_the_reason_is_shown(app, client, login_as):
    """A course of a past term (add/drop closed, not graded yet) offers no Drop button that
    would ask for confirmation and then refuse: both pages say why instead. A course still in
    its add/drop period offers Drop, and the drop succeeds."""
    student = login_as("student")
    with app.app_context():
        session = _db.session
        me = session.merge(student)
        past = factories.make_term(session, state="past-drop", name="Spring 2026")
        closed = factories.make_section(session, term=past)
        closed_registration = factories.enrol(session, me, closed)
        graded = factories.make_completed(
            session, me, factories.make_course(session, code="HIS101"), "B+"
        )
        current = factories.make_section(session, term=factories.make_term(session))
        current_registration = factories.enrol(session, me, current)
        session.commit()
        closed_id, graded_id, closed_registration_id = closed.id, graded.id, closed_registration.id
        closed_drop = f"/registrations/{closed_registration.id}/drop"
        graded_drop = f"/registrations/{graded.id}/drop"
        current_drop = f"/registrations/{current_registration.id}/drop"

    mine = client.get("/registrations")
    actions = {form.action for form in rendered_forms(mine, "/registrations")}
    assert current_drop in actions
    assert closed_drop not in actions and graded_drop not in actions
    text = mine.get_data(as_text=True)
    assert "The add/drop deadline for Spring 2026 was" in text
    assert "contact the registrar&#39;s office to withdraw." in text

    section_page = client.get(f"/sections/{closed_id}")
    assert closed_drop not in {f.action for f in rendered_forms(section_page, "/")}
    assert "The add/drop deadline for Spring 2026 was" in section_page.get_data(as_text=True)

    # The rule the pages read is the rule the drop checks: posting anyway is refused.
    refused = post_form(client, closed_drop, token_from="/registrations", follow_redirects=True)
    assert "The add/drop deadline for Spring 2026 was" in refused.get_data(as_text=True)
    refused = post_form(client, graded_drop, token_from="/registrations", follow_redirects=True)
    assert "add/drop deadline" in refused.get_data(as_text=True)  # a grade comes after it
    dropped = post_form(client, current_drop, token_from="/registrations", follow_redirects=True)
    assert "You dropped" in dropped.get_data(as_text=True)
    with app.app_context():
        for kept in (graded_id, closed_registration_id):
            assert _db.session.get(Registration, kept).status == "enrolled"


def test_counts_read_as_words_and_a_search_too_long_is_refused_whole(app, client, login_as):
    with app.app_context():
        session = _db.session
        term = factories.make_term(session)
        factories.make_section(
            session,
            course=factories.make_course(session, code="ONE1", title="Single", credits=1),
            term=term,
            capacity=1,
        )
        session.commit()
    login_as("student")
    page = client.get("/courses?q=single&term=all").get_data(as_text=True)
    assert "1 course found" in page and "1 courses" not in page
    assert "1 credit<" in page and "1 credits" not in page
    assert "1 of 1 seat left" in page
    typed = "calculus " * 20  # 180 characters
    refused = client.get("/courses", query_string={"q": typed}).get_data(as_text=True)
    assert "Searches are at most 100 characters; yours has 180." in refused
    assert f'value="{typed}"' in refused  # kept whole to be shortened, not cut silently
    assert "No courses match" not in refused
