from __future__ import annotations

from portal.extensions import db as _db
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


def test_section_page_shows_seats_and_register_button(app, client, login_as):
    _seed(app)
    login_as("student")
    course_page = client.get("/courses/PHY301").get_data(as_text=True)
    assert "1 of 1 seats left" in course_page
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
