"""Which language a page is in: the person's choice, else the browser's, else the setting;
`lang` and `dir` of the page and the stylesheet that goes with them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portal.extensions import db as _db
from portal.models import User
from tests import factories
from tests.conftest import make_app, post_form
from tests.forms import rendered_form

HTML = re.compile(r'<html lang="([^"]+)" dir="(rtl|ltr)"')


def page_language(client: FlaskClient, path: str, **headers: str) -> tuple[str, str]:
    page = client.get(path, headers=headers)
    assert page.status_code == 200, page.status_code
    found = HTML.search(page.get_data(as_text=True))
    assert found, "no lang/dir on <html>"
    return found.group(1), found.group(2)


def with_an_account(app: Flask) -> Flask:
    """A portal with an account: its log-in page is not the first-run page."""
    with app.app_context():
        factories.make_user(_db.session, "admin")
        _db.session.commit()
    return app


def test_the_log_in_page_follows_the_browser(app: Flask, client: FlaskClient) -> None:
    with_an_account(app)
    assert page_language(client, "/login", **{"Accept-Language": "ar,en;q=0.5"}) == ("ar", "rtl")
    assert page_language(client, "/login", **{"Accept-Language": "fr-CA, en;q=0.8"}) == (
        "fr",
        "ltr",
    )
    # Asked for languages the portal lacks: the best of the ones it has, else the default.
    assert page_language(client, "/login", **{"Accept-Language": "de, fr;q=0.3"})[0] == "fr"
    assert page_language(client, "/login", **{"Accept-Language": "de"}) == ("en", "ltr")


def test_without_a_browser_preference_the_default_language_setting_applies(
    tmp_path: Path,
) -> None:
    app = with_an_account(make_app(tmp_path, DEFAULT_LANGUAGE="ar"))
    with app.test_client() as client:
        assert page_language(client, "/login") == ("ar", "rtl")
        assert page_language(client, "/login", **{"Accept-Language": "fr"})[0] == "fr"


def test_an_unknown_default_language_stops_the_start(tmp_path: Path) -> None:
    from portal.config import ConfigError

    with pytest.raises(ConfigError, match="DEFAULT_LANGUAGE must be"):
        make_app(tmp_path, DEFAULT_LANGUAGE="de")


def test_arabic_pages_use_the_right_to_left_stylesheet(app: Flask, client: FlaskClient) -> None:
    with_an_account(app)
    arabic = client.get("/login", headers={"Accept-Language": "ar"}).get_data(as_text=True)
    english = client.get("/login", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "bootstrap.rtl.min.css" in arabic and "bootstrap.min.css" not in arabic
    assert "bootstrap.min.css" in english and "rtl" not in english.split("<body")[0].replace(
        'dir="ltr"', ""
    )
    # The stylesheet comes from the npm package at build time (portal/assets/vendor.txt).
    stylesheet = client.get("/static/vendor/bootstrap/bootstrap.rtl.min.css")
    assert stylesheet.status_code == 200
    assert b".ms-auto{margin-right:auto!important}" in stylesheet.data  # start is on the right


def test_a_person_chooses_a_language_on_the_profile_page_and_it_wins_over_the_browser(
    app: Flask, client: FlaskClient, login_as: Callable[..., Any]
) -> None:
    user = login_as("student")
    french_browser = {"Accept-Language": "fr"}
    assert page_language(client, "/profile/", **french_browser)[0] == "fr"
    form = rendered_form(client.get("/profile/"), action="/profile/language")
    answer = form.submit(client, language="ar")
    assert answer.status_code == 302
    assert page_language(client, "/profile/", **french_browser) == ("ar", "rtl")
    with app.app_context():
        assert _db.session.get(User, user.id).language == "ar"  # type: ignore[union-attr]
    # The choice's own names, whatever the page's language.
    page = client.get("/profile/").get_data(as_text=True)
    for name in ("English", "العربية", "Français"):
        assert f">{name}</option>" in page
    # Back to the browser's language.
    rendered_form(client.get("/profile/"), action="/profile/language").submit(client, language="")
    assert page_language(client, "/profile/", **french_browser)[0] == "fr"
    with app.app_context():
        assert _db.session.get(User, user.id).language is None  # type: ignore[union-attr]


def test_a_language_the_portal_lacks_is_refused_with_a_message(
    app: Flask, client: FlaskClient, login_as: Callable[..., Any]
) -> None:
    user = login_as("student")
    # A forged answer: the page offers no such choice.
    answer = post_form(client, "/profile/language", {"language": "de"}, token_from="/profile/")
    assert answer.status_code == 422
    assert "Not a valid choice" in answer.get_data(as_text=True)
    with app.app_context():
        assert _db.session.get(User, user.id).language is None  # type: ignore[union-attr]


MISSING_CATALOGUES = """
import sys
from pathlib import Path
from portal import i18n
from portal.extensions import db
from tests import factories
from tests.conftest import make_app

tmp = Path(sys.argv[1])
i18n.TRANSLATIONS = tmp / "no-catalogues"  # a copy of the portal whose .mo files are missing
app = make_app(tmp)
with app.app_context():
    factories.make_user(db.session, "admin")
    db.session.commit()
page = app.test_client().get("/login", headers={"Accept-Language": "ar"})
print(page.status_code)
print(page.get_data(as_text=True))
"""


def test_the_portal_works_in_english_when_the_compiled_catalogues_are_missing(
    tmp_path: Path,
) -> None:
    """In a process of its own: the loaded catalogues are cached per process."""
    root = Path(__file__).resolve().parents[2]
    answer = subprocess.run(
        [sys.executable, "-c", MISSING_CATALOGUES, str(tmp_path)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    status, _, text = answer.stdout.partition("\n")
    assert status == "200"
    assert 'dir="rtl"' in text  # the page is still laid out for its language
    assert "Log in to Campus Portal" in text  # in the source language's words


def test_an_unknown_time_zone_stops_the_start(tmp_path: Path) -> None:
    from portal.config import ConfigError

    with pytest.raises(ConfigError, match="not a time zone name"):
        make_app(tmp_path, TIMEZONE="Mars/Olympus")


def test_the_api_answers_in_the_language_its_request_asks_for(app: Flask) -> None:
    from flask_login import login_user

    from portal import i18n

    with app.app_context():
        user = factories.make_user(_db.session, "student", language="ar")
        _db.session.commit()

        def language(path: str, **headers: str) -> str:
            with app.test_request_context(path, headers=headers):
                login_user(user)
                return i18n.select_locale()

        assert language("/api/v1/me", **{"Accept-Language": "fr"}) == "fr"
        assert language("/api/v1/me") == "ar"  # no header: the person's language
        assert language("/profile/", **{"Accept-Language": "fr"}) == "ar"  # a page: theirs


def test_templates_follow_a_language_changed_within_the_request(app: Flask) -> None:
    """Templates find the catalogue once per request, yet a language changed in the request
    (`force_locale`, as a background task in the person's language; `refresh`, after a choice on
    the profile page) is what the next string is said in."""
    from flask import render_template_string
    from flask_babel import force_locale, refresh

    from portal import i18n

    page = "{{ _('My registrations') }}|{{ ngettext('%(num)d seat', '%(num)d seats', 2) }}"
    with app.test_request_context("/", headers={"Accept-Language": "fr"}):
        french = render_template_string(page)
        assert french.startswith(i18n.translations().ugettext("My registrations"))
        with force_locale("ar"):
            arabic = render_template_string(page)
        assert arabic != french and arabic.split("|")[0] != "My registrations"
        assert render_template_string(page) == french  # the request's own language again
        i18n_state = app.extensions["babel"]
        selector = i18n_state.locale_selector
        i18n_state.locale_selector = lambda: "en"
        try:
            refresh()
            assert render_template_string(page).startswith("My registrations|2 seats")
        finally:
            i18n_state.locale_selector = selector
    with app.test_request_context("/", headers={"Accept-Language": "ar"}):
        assert render_template_string(page) == arabic  # a new request: its own language
