from __future__ import annotations

from portal import __version__


def test_healthz_reports_status_version_and_database(client, app):
    from flask_migrate import stamp

    with app.app_context():
        stamp()
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok"
    assert body["version"] == __version__
    assert body["database"]["status"] == "ok"
    assert body["database"]["dialect"] == "sqlite"


def test_healthz_reports_a_database_without_schema_as_degraded(client):
    response = client.get("/healthz")  # created with create_all: no migration stamp
    assert response.status_code == 503
    assert response.get_json()["database"]["status"] == "error"


def test_unknown_page_gets_a_friendly_404(client, login_as):
    login_as("student")
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "There is nothing at this address" in response.get_data(as_text=True)


def test_unexpected_error_shows_no_stack_trace(app, client):
    from portal.auth.policy import public

    @app.get("/explode")
    @public
    def explode():
        raise RuntimeError("secret internals")

    response = client.get("/explode")
    body = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Something went wrong" in body
    assert "secret internals" not in body and "Traceback" not in body


def test_students_and_staff_get_their_own_home(client, login_as):
    login_as("student")
    assert client.get("/").headers["Location"].endswith("/registrations")


def test_navigation_depends_on_role(app, client, login_as):
    login_as("admin")
    page = client.get("/").get_data(as_text=True)
    assert 'href="/admin/users/"' in page
    assert "My registrations" not in page


def test_front_door_goes_to_login_without_a_warning(client, login_as):
    login_as("student")  # an account exists, so the first-run page is not shown
    anonymous = client.application.test_client()
    response = anonymous.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert "Please log in" not in anonymous.get("/login").get_data(as_text=True)
    other = anonymous.get("/registrations")
    assert "/login?next=" in other.headers["Location"]
