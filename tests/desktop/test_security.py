"""The local server is not a public server: real requests against a running launcher."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import unavailable
from tests.desktop.conftest import log_in
from tests.desktop.launcher_process import PortalClient


@pytest.fixture
def running(start_launcher, admin_data_dir):
    return start_launcher(admin_data_dir)


def test_listens_on_loopback_only(running):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: just picks the outgoing address
            outward = probe.getsockname()[0]
        except OSError:
            unavailable("no non-loopback address on this machine")
    if outward.startswith("127."):
        unavailable("no non-loopback address on this machine")
    with pytest.raises(OSError), socket.create_connection((outward, running.port), timeout=2):
        pass


def test_another_user_without_the_token_is_refused(running):
    stranger = PortalClient(running.port)
    for path in ("/", "/login", "/healthz", "/static/css/portal.css", "/setup/"):
        assert stranger.get(path).status == 403, path
    assert stranger.post("/login", {"username": "chief", "password": "x"}).status == 403


def test_the_token_becomes_an_httponly_strict_cookie_and_leaves_the_url(running):
    client = PortalClient(running.port)
    response = client.get(running.launch_path)
    assert response.status == 303
    assert response.location == "/login"  # where `/` would send a visitor who is not signed in
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert client.get("/healthz").status == 200
    assert client.follow("/").status == 200


def test_headless_pages_keep_other_sites_windows_out(running):
    """Served headless, the pages open beside other sites in the user's browser: every answer
    carries the opener policy (the portal's own window goes without it, see desktop/guard.py)."""
    client = running.client()
    for path in ("/login", "/healthz", "/static/css/portal.css"):
        assert client.get(path).headers.get("cross-origin-opener-policy") == "same-origin", path


def test_a_used_token_is_refused(running):
    first = running.client()
    assert first.get("/healthz").status == 200
    thief = PortalClient(running.port)
    assert thief.get(running.launch_path).status == 403
    assert thief.get("/healthz").status == 403


def test_a_wrong_token_is_refused(running):
    client = PortalClient(running.port)
    assert client.get("/launch/not-the-token").status == 403
    assert client.get(running.launch_path + "x").status == 403
    # a failed guess does not use up the real token
    assert running.client().get("/healthz").status == 200


def test_dns_rebinding_host_is_refused_even_with_the_cookie(running):
    client = running.client()
    for host in (
        f"evil.example:{running.port}",
        f"localhost:{running.port}",
        "127.0.0.1",
        f"127.0.0.1:{running.port + 1}",
    ):
        response = client.get("/healthz", headers={"Host": host})
        assert response.status == 400, host
    # and the launch link itself is refused under a foreign name
    fresh = PortalClient(running.port)
    assert fresh.get(running.launch_path, headers={"Host": "evil.example"}).status == 400


def test_cross_origin_post_is_refused(running):
    client = running.client()
    log_in(client)
    token = client.csrf_token("/admin/users/new")
    form = {
        "csrf_token": token,
        "username": "intruder",
        "full_name": "In Truder",
        "role": "admin",
        "password": "intruder-pass",
    }
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": f"http://localhost:{running.port}"},
        {"Referer": "http://evil.example/page"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        assert client.post("/admin/users/new", form, headers=headers).status == 403, headers
    listing = client.get("/admin/users/?q=intruder")
    assert listing.status == 200 and "In Truder" not in listing.text
    same_origin = client.post("/admin/users/new", form, headers={"Origin": client.origin})
    assert same_origin.status == 302


def test_control_endpoint_needs_the_key(running):
    client = running.client()
    assert client.post("/.campus-portal/focus", {}).status == 403
    wrong = {"X-Campus-Portal-Control": "guess"}
    assert client.request("POST", "/.campus-portal/focus", headers=wrong).status == 403


def test_portal_login_still_required_behind_the_guard(running):
    client = running.client()
    response = client.get("/admin/users/")
    assert response.status == 302 and "/login" in response.location


def test_an_api_token_alone_does_not_pass_the_local_guard(running):
    """The API runs on the desktop too, behind the launch cookie and the Host check: a personal
    token (which the portal itself would accept) gets nobody past the guard."""
    owner = running.client()
    log_in(owner)
    made = owner.post(
        "/profile/tokens",
        {"csrf_token": owner.csrf_token("/profile/"), "name": "local script", "expires": "30"},
    )
    assert made.status == 201
    secret = made.text.split('id="new-token" value="', 1)[1].split('"', 1)[0]
    bearer = {"Authorization": f"Bearer {secret}", "Accept": "application/json"}

    # With the launch cookie the token works, and is who it says (no session needed):
    with_cookie = PortalClient(
        running.port, cookies={"portal_launch": owner.cookies["portal_launch"]}
    )
    answer = with_cookie.get("/api/v1/me", headers=bearer)
    assert answer.status == 200
    assert '"authenticated_by":"token"' in answer.text.replace(" ", "")

    # Another OS user, or a web page, with only the token: refused by the guard.
    stranger = PortalClient(running.port)
    assert stranger.get("/api/v1/me", headers=bearer).status == 403
    assert stranger.get("/api/v1/courses", headers=bearer).status == 403
    # A DNS-rebinding page that learnt the token: refused on the Host header, cookie or not.
    rebound = {**bearer, "Host": f"evil.example:{running.port}"}
    assert stranger.get("/api/v1/me", headers=rebound).status == 400
    assert with_cookie.get("/api/v1/me", headers=rebound).status == 400
