"""Each role's home page: the way to its work."""

from __future__ import annotations

from portal.extensions import db as _db
from tests import factories


def test_a_fresh_installation_shows_the_admin_its_next_steps(app, client, login_as):
    login_as("admin")
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Next steps" in page
    for path in ("/admin/terms/new", "/admin/courses", "/admin/imports", "/admin/terms"):
        assert f'href="{path}"' in page
    assert "No sections yet" in page


def test_next_steps_are_crossed_off_and_then_go_away(app, client, login_as):
    login_as("admin")
    with app.app_context():
        term = factories.make_term(_db.session)
        _db.session.commit()
    page = client.get("/").get_data(as_text=True)
    assert "Next steps" in page
    assert 'href="/admin/terms/new"' not in page  # done: crossed off, no longer a link
    with app.app_context():
        factories.make_user(_db.session, "student")
        section = factories.make_section(_db.session, term=_db.session.merge(term))
        _db.session.commit()
        section_id, label = section.id, section.label
    page = client.get("/").get_data(as_text=True)
    assert "Next steps" not in page
    # The current term's sections, each with its teaching pages one click away.
    assert label in page
    for path in ("gradebook", "attendance", "submissions"):
        assert f'href="/sections/{section_id}/{path}"' in page
    assert f'href="/admin/sections/{section_id}"' in page


def test_staff_section_page_links_its_teaching_pages_and_exports(app, client, login_as):
    instructor = login_as("instructor")
    with app.app_context():
        mine = factories.make_section(_db.session, instructor_id=instructor.id)
        other = factories.make_section(_db.session)
        _db.session.commit()
        mine_id, other_id = mine.id, other.id
    page = client.get(f"/sections/{mine_id}").get_data(as_text=True)
    for path in (
        f"/sections/{mine_id}/gradebook",
        f"/sections/{mine_id}/assessments",
        f"/sections/{mine_id}/attendance",
        f"/sections/{mine_id}/submissions",
        f"/admin/sections/{mine_id}/roster.csv",
        f"/admin/sections/{mine_id}/gradebook.csv",
        f"/admin/sections/{mine_id}/attendance.csv",
    ):
        assert f'href="{path}"' in page
        assert client.get(path).status_code == 200
    other_page = client.get(f"/sections/{other_id}").get_data(as_text=True)
    assert f"/sections/{other_id}/gradebook" not in other_page
