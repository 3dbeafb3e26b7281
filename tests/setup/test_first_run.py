"""The first-run page: only for an empty desktop database not connected to a campus server;
the local administrator only where no campus server is set (connecting: tests/sync)."""

from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db as _db
from portal.models import AuditEntry, User
from tests import factories
from tests.conftest import csrf_token, make_app

ADMIN = {
    "full_name": "Ada Admin",
    "username": "ada",
    "email": "ada@campus.example",
    "password": "a-long-secret",
    "confirm": "a-long-secret",
}


def test_empty_database_sends_login_to_setup(client):
    response = client.get("/login")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/setup/")
    front_door = client.get("/")  # in one hop, not through the log-in page
    assert front_door.status_code == 302
    assert front_door.headers["Location"].endswith("/setup/")
    page = client.get("/setup/")
    assert page.status_code == 200
    assert "Create the first administrator" in page.get_data(as_text=True)


def test_creating_the_first_admin_logs_in_and_closes_setup(app, client):
    token = csrf_token(client, "/setup/")
    response = client.post("/setup/", data={"csrf_token": token, **ADMIN})
    assert response.status_code == 302
    assert client.get("/").status_code == 200  # logged in as the new admin
    with app.app_context():
        admin = _db.session.scalar(select(User).where(User.username == "ada"))
        assert admin is not None and admin.role == "admin"
        entry = _db.session.scalar(
            select(AuditEntry).where(AuditEntry.action == "setup.first_admin")
        )
        assert entry is not None and entry.actor_id == admin.id
    other = app.test_client()
    assert other.get("/setup/").status_code == 404
    assert other.get("/login").status_code == 200


def test_setup_refused_once_an_account_exists(app, db, client):
    factories.make_user(db, "student")
    db.commit()
    assert client.get("/setup/").status_code == 404
    token = csrf_token(client, "/login")
    response = client.post("/setup/", data={"csrf_token": token, **ADMIN})
    assert response.status_code == 404
    assert db.scalar(select(User).where(User.username == "ada")) is None


def test_a_second_submission_after_setup_is_refused(app, client):
    token = csrf_token(client, "/setup/")
    assert client.post("/setup/", data={"csrf_token": token, **ADMIN}).status_code == 302
    late = app.test_client()
    late_token = csrf_token(late, "/login")
    again = late.post("/setup/", data={"csrf_token": late_token, **ADMIN, "username": "eve"})
    assert again.status_code == 404
    with app.app_context():
        assert _db.session.scalar(select(User).where(User.username == "eve")) is None


def test_validation_errors_keep_the_typed_input(client):
    token = csrf_token(client, "/setup/")
    data = {**ADMIN, "confirm": "something-else"}
    response = client.post("/setup/", data={"csrf_token": token, **data})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "The passwords do not match." in page
    assert 'value="Ada Admin"' in page and 'value="ada"' in page


def test_a_preset_central_server_offers_connecting_only(tmp_path):
    app = make_app(tmp_path, SERVER_URL="https://portal.campus.example", ENROLMENT_CODE="ABCD-EFGH")
    client = app.test_client()
    assert client.get("/login").headers["Location"].endswith("/setup/")
    page = client.get("/setup/").get_data(as_text=True)
    assert "Connect to your campus server" in page
    assert 'value="https://portal.campus.example"' in page and 'value="ABCD-EFGH"' in page
    assert "Create the administrator" not in page
    token = csrf_token(client, "/setup/")
    response = client.post("/setup/", data={"csrf_token": token, **ADMIN})
    assert response.status_code == 404  # a copy meant to sync gets its accounts from there
    with app.app_context():
        assert _db.session.scalar(select(User).where(User.username == "ada")) is None


def test_no_setup_redirect_in_server_mode(tmp_path):
    app = make_app(
        tmp_path,
        f"sqlite:///{tmp_path / 'server.db'}",
        MODE="server",
        RATELIMIT_STORAGE_URI="memory://",
    )
    assert app.test_client().get("/login").status_code == 200


def test_no_log_in_prompt_on_the_first_run_page(client):
    page = client.get("/", follow_redirects=True)
    text = page.get_data(as_text=True)
    assert "Welcome to Campus Portal" in text
    assert "Please log in" not in text
