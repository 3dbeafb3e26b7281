"""The API docs page (Swagger UI from the portal's own files, under the strict CSP) and the
profile page where a person makes an API token and uses it."""

from __future__ import annotations

import json
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import console_errors

pytestmark = pytest.mark.browser


def test_api_docs_render_from_local_assets_and_call_the_api(page, live_server, login, screenshot):
    problems = console_errors(page)
    outside: list[str] = []
    page.on(
        "request",
        lambda r: outside.append(r.url) if not r.url.startswith(live_server.url) else None,
    )
    login(page, "student")
    page.goto(live_server.url + "/api/v1/docs")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=20_000)
    expect(page.locator(".swagger-ui")).to_contain_text("/api/v1/me/registrations")
    # Try one call from the page, with the browser session.
    block = page.locator(".opblock-get", has_text="/api/v1/me").first
    block.locator(".opblock-summary").click()
    block.get_by_role("button", name="Try it out").click()
    block.get_by_role("button", name="Execute").click()
    expect(block.locator(".live-responses-table tbody .response-col_status").first).to_contain_text(
        "200", timeout=10_000
    )
    screenshot(page, "api-docs")
    assert outside == [], "the docs page fetched something from outside the portal"
    assert problems == [], problems


def test_a_token_made_on_the_profile_page_calls_the_api(page, live_server, login, screenshot):
    login(page, "instructor")
    page.goto(live_server.url + "/")
    page.get_by_role("link", name="Dr Ines Instructor").click()
    expect(page.get_by_role("heading", name="Your profile")).to_be_visible()
    page.get_by_label("Token name").fill("grade export")
    page.get_by_label("Expires after").select_option("30")
    page.get_by_role("button", name="Make token").click()
    secret = page.get_by_label("Token", exact=True).input_value()
    assert secret.startswith("cpt_")
    screenshot(page, "profile-new-token")
    request = urllib.request.Request(
        live_server.url + "/api/v1/me", headers={"Authorization": f"Bearer {secret}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.loads(answer.read())["username"] == "instructor"
    page.get_by_role("button", name="Revoke grade export").click()
    expect(page.get_by_text("is revoked")).to_be_visible()
    expect(page.get_by_role("cell", name="Revoked")).to_be_visible()


def test_api_docs_meet_wcag_aa(page, live_server, login, screenshot, assert_accessible):
    """The docs page is one of ours: axe finds no serious or critical problem on it, and in
    particular no colour below AA contrast and no control without a name, with what a reader
    opens shown: each kind of operation (its method badge, parameters, responses and media-type
    choices), a call tried out and answered, and nested schemas expanded."""
    login(page, "student")
    page.goto(live_server.url + "/api/v1/docs")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=20_000)
    for kind in ("get", "post", "put", "patch", "delete"):
        operation = page.locator(f".opblock-{kind}").first
        operation.locator(".opblock-summary").click()
        expect(operation.locator(".responses-wrapper")).to_be_visible()
    me = page.locator(".opblock-get", has_text="/api/v1/me").first
    me.locator(".opblock-summary").click()
    me.get_by_role("button", name="Try it out").click()
    me.get_by_role("button", name="Execute").click()
    expect(me.locator(".live-responses-table tbody .response-col_status").first).to_contain_text(
        "200", timeout=10_000
    )
    schemas = page.locator(".models .model-box-control")
    for index in range(3):
        schemas.nth(index).click()
    expect(page.locator(".models .property-row").first).to_be_visible()
    expect(page.get_by_label("Server that calls from this page go to")).to_have_value("/")
    screenshot(page, "api-docs-aa")
    lesser = assert_accessible(page)
    named = {"color-contrast", "select-name", "label", "button-name", "link-name"}
    assert [v["id"] for v in lesser if v["id"] in named] == []
