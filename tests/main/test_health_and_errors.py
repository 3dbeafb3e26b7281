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


def test_a_full_disk_gets_its_own_message_and_the_change_is_not_kept(app, client):
    """The real ENOSPC is tested against a running launcher (tests/desktop/test_problems.py);
    here every database's way of saying it is recognised, and the session rolled back."""
    import errno
    import sqlite3

    import psycopg.errors
    from sqlalchemy.exc import OperationalError

    from portal.auth.policy import public
    from portal.main.errors import storage_is_full

    sqlite_full = sqlite3.OperationalError("database or disk is full")
    sqlite_full.sqlite_errorcode = 13  # SQLITE_FULL, as the sqlite3 module sets it
    assert storage_is_full(OperationalError("INSERT ...", {}, sqlite_full))
    assert storage_is_full(OperationalError("INSERT ...", {}, psycopg.errors.DiskFull()))
    upload = OSError(errno.ENOSPC, "No space left on device")
    try:
        raise RuntimeError("storing the upload failed") from upload
    except RuntimeError as wrapped:
        assert storage_is_full(wrapped)
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = 5  # SQLITE_BUSY
    assert not storage_is_full(OperationalError("INSERT ...", {}, locked))
    assert not storage_is_full(RuntimeError("something else"))

    @app.post("/fill-the-disk")
    @public
    def fill_the_disk():
        raise OperationalError("INSERT ...", {}, sqlite_full)

    app.config["WTF_CSRF_ENABLED"] = False
    response = client.post("/fill-the-disk")
    assert response.status_code == 507
    body = response.get_data(as_text=True)
    assert "The disk is full" in body and "Everything saved before is safe" in body
    assert "INSERT" not in body
