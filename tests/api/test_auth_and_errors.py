"""API authentication (tokens, the browser session and CSRF) and the one error shape."""

from __future__ import annotations

import json
from datetime import timedelta

from portal.api.problems import CONTENT_TYPE
from portal.extensions import db as _db
from portal.models import ApiToken, User
from portal.profile.services import token_digest
from tests import factories
from tests.conftest import csrf_token, make_app, post_form


def assert_problem(response, status: int, type_: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == CONTENT_TYPE
    body = json.loads(response.get_data(as_text=True))
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["instance"] == response.request.path
    if type_ is not None:
        assert body["type"] == type_
    return body


def test_a_token_authenticates_its_owner_with_its_role_and_no_session(api_as, world):
    response = api_as("lab_staff").get("/api/v1/me")
    assert response.status_code == 200
    assert response.json["username"] == world.usernames["lab_staff"]
    assert response.json["role"] == "lab_staff"
    assert response.json["authenticated_by"] == "token"
    assert "Set-Cookie" not in response.headers  # a token call never starts a session


def test_anonymous_calls_get_401_with_the_bearer_challenge(api_as):
    response = api_as(None).get("/api/v1/courses")
    body = assert_problem(response, 401, "about:blank")
    assert body["title"] == "Unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_malformed_revoked_and_expired_tokens_are_refused(app, api_as, world):
    client = api_as(None).client
    for header, error in [
        ("Bearer cpt_not-a-real-token", "invalid_token"),
        ("Bearer something-else", "invalid_token"),
        ("Basic dXNlcjpwYXNz", "invalid_request"),
        ("Bearer ", "invalid_request"),
    ]:
        response = client.get("/api/v1/me", headers={"Authorization": header})
        assert_problem(response, 401)
        assert f"error={error}" in response.headers["WWW-Authenticate"]

    with app.app_context():
        token = _db.session.scalar(
            _db.select(ApiToken).where(ApiToken.token_hash == token_digest(world.tokens["student"]))
        )
        token.revoked_at = factories.now()
        expiring = _db.session.scalar(
            _db.select(ApiToken).where(
                ApiToken.token_hash == token_digest(world.tokens["instructor"])
            )
        )
        expiring.expires_at = factories.now() - timedelta(seconds=1)
        _db.session.commit()
    assert_problem(api_as("student").get("/api/v1/me"), 401)
    assert_problem(api_as("instructor").get("/api/v1/me"), 401)
    assert api_as("admin").get("/api/v1/me").status_code == 200


def test_a_deactivated_owner_s_token_stops_working(app, api_as, world):
    with app.app_context():
        _db.session.get(User, world.users["student"]).active = False
        _db.session.commit()
    assert_problem(api_as("student").get("/api/v1/me"), 401)


def test_the_token_records_when_it_was_last_used(app, api_as, world):
    assert api_as("admin").get("/api/v1/terms").status_code == 200
    with app.app_context():
        token = _db.session.scalar(
            _db.select(ApiToken).where(ApiToken.token_hash == token_digest(world.tokens["admin"]))
        )
        assert token.last_used_at is not None
        assert factories.now() - token.last_used_at < timedelta(minutes=1)


def test_a_bad_token_is_refused_even_with_a_valid_session(app, client, login_as):
    login_as("student")
    assert client.get("/api/v1/me").json["authenticated_by"] == "session"
    response = client.get("/api/v1/me", headers={"Authorization": "Bearer cpt_wrong"})
    assert_problem(response, 401)


def test_tokens_are_not_accepted_by_the_pages(api_as):
    response = api_as("student").get("/registrations")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_session_calls_need_the_csrf_header_and_token_calls_do_not(
    app, client, login_as, world, api_as
):
    login_as("student")
    body = {"section_id": str(world.other_section_id)}
    refused = client.post("/api/v1/me/registrations", json=body)
    problem = assert_problem(refused, 400)
    assert "CSRF" in problem["detail"]
    token = csrf_token(client, "/")
    accepted = client.post("/api/v1/me/registrations", json=body, headers={"X-CSRFToken": token})
    assert accepted.status_code == 201
    # The world's own student, with a token and no CSRF header at all:
    by_token = api_as("student").post("/api/v1/me/registrations", json=body)
    assert by_token.status_code == 201


def test_schema_violations_are_422_with_field_errors(api_as):
    response = api_as("student").post(
        "/api/v1/me/registrations", json={"section_id": "not-a-uuid", "extra": 1}
    )
    body = assert_problem(response, 422, "urn:campus-portal:problem:invalid-request")
    fields = {(e["location"], e["field"]) for e in body["errors"]}
    assert fields == {("json", "section_id"), ("json", "extra")}

    response = api_as("student").get("/api/v1/courses?per_page=1000&page=0")
    body = assert_problem(response, 422)
    assert {(e["location"], e["field"]) for e in body["errors"]} == {
        ("query", "per_page"),
        ("query", "page"),
    }


def test_field_errors_are_said_in_the_requests_language(api_as):
    """marshmallow writes its messages in English; a problem says them in the language the
    request asks for, as the portal's catalogues translate them (read from the catalogues
    themselves, not written here)."""
    from babel.messages.pofile import read_po

    from portal.i18n import TRANSLATIONS

    def said(language: str, msgid: str, **values: str) -> str:
        with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
            text = read_po(po)[msgid].string
        assert text and text != msgid, (language, msgid)
        return text % values if values else text

    student = api_as("student")
    for language in ("ar", "fr"):
        headers = {"Accept-Language": language}
        response = student.post(
            "/api/v1/me/registrations",
            json={"section_id": "not-a-uuid", "extra": 1},
            headers=headers,
        )
        body = assert_problem(response, 422, "urn:campus-portal:problem:invalid-request")
        by_field = {e["field"]: e["message"] for e in body["errors"]}
        assert by_field == {
            "section_id": said(language, "Not a valid UUID."),
            "extra": said(language, "Unknown field."),
        }
        response = student.get("/api/v1/courses?per_page=1000", headers=headers)
        body = assert_problem(response, 422)
        (error,) = body["errors"]
        assert error["message"] == said(
            language, "Must be from %(min)s to %(max)s.", min="1", max="100"
        )
    english = student.get("/api/v1/courses?per_page=1000").json["errors"][0]["message"]
    assert english == "Must be from 1 to 100."


def test_not_found_and_method_not_allowed_are_problems(api_as):
    assert_problem(api_as("student").get("/api/v1/nothing-here"), 404)
    assert_problem(api_as("student").get(f"/api/v1/sections/{factories.now():%Y}"), 404)
    response = api_as("student").open("PATCH", "/api/v1/terms")
    assert_problem(response, 405)
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_an_oversized_body_is_413(api_as):
    response = api_as("student").post(
        "/api/v1/me/registrations",
        data=b"x" * (22 * 1024 * 1024),
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 413)


def test_rate_limit_is_429_with_retry_after(tmp_path):
    app = make_app(tmp_path, API_RATE_LIMIT="3 per minute")
    with app.app_context():
        from portal.profile.services import create_token

        user = factories.make_user(_db.session, "student")
        secret = create_token(
            _db.session, user, "loop", expires_in_days=None, now=factories.now()
        ).secret
        _db.session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    statuses = [client.get("/api/v1/terms", headers=headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/v1/terms", headers=headers)
    assert_problem(response, 429)
    assert int(response.headers["Retry-After"]) > 0


def test_an_unexpected_error_is_a_500_problem_with_the_request_id(tmp_path):
    from portal.auth.policy import public

    app = make_app(tmp_path)

    @public
    def broken():  # a view that fails the way a bug would
        raise RuntimeError("bug")

    app.add_url_rule("/api/v1/broken", "broken", broken)
    response = app.test_client().get("/api/v1/broken", headers={"X-Request-ID": "req-123"})
    body = assert_problem(response, 500)
    assert "bug" not in response.get_data(as_text=True)
    assert body["request_id"] == "req-123"


def test_domain_refusals_are_problems_with_their_type(api_as, world):
    student = api_as("student")
    again = student.post("/api/v1/me/registrations", json={"section_id": str(world.section_id)})
    body = assert_problem(again, 409, "urn:campus-portal:problem:registration-refused")
    assert "already enrolled" in body["detail"]


def test_profile_page_makes_a_token_shown_once_and_revokes_it(app, client, login_as):
    user = login_as("instructor")
    response = post_form(
        client, "/profile/tokens", {"name": "export", "expires": "30"}, "/profile/"
    )
    assert response.status_code == 201
    page = response.get_data(as_text=True)
    secret = page.split('id="new-token" value="', 1)[1].split('"', 1)[0]
    assert secret.startswith("cpt_")
    with app.app_context():
        token = _db.session.scalar(_db.select(ApiToken).where(ApiToken.user_id == user.id))
        assert token.token_hash == token_digest(secret) and secret not in token.token_hash
        assert (token.expires_at - factories.now()).days in (29, 30)
        token_id = token.id
    assert secret not in client.get("/profile/").get_data(as_text=True)  # shown once
    api = app.test_client()
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    revoked = post_form(client, f"/profile/tokens/{token_id}/revoke", {}, "/profile/")
    assert revoked.status_code == 302
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    refused = post_form(client, "/profile/tokens", {"name": "", "expires": "30"}, "/profile/")
    assert refused.status_code == 422
