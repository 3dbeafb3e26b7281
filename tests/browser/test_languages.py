"""Each role's main pages in Arabic and in French, as a person who chose that language on their
profile sees them: right to left in Arabic, nothing wider than the window at 1280 and 400 px,
clean for axe-core, and no English text left where the catalogue has a translation. The home
page of each role in Arabic is saved as tests/artifacts/rtl-<role>-home.png to be looked at.

The main pages are the role's home, the pages of its top bar and its profile page. Until the
translators are done, the check for English words covers the messages translated so far.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from babel.messages.pofile import read_po
from sqlalchemy import update

from portal.i18n import TRANSLATIONS
from portal.models import User
from tests.browser.conftest import (
    LiveServer,
    check_accessible,
    live_portal_app,
    login_page,
    save_screenshot,
    serve,
)

pytestmark = pytest.mark.browser

ACCOUNTS = {
    "student": "student",
    "instructor": "instructor",
    "lab_staff": "labstaff",
    "admin": "admin",
}
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 400, "height": 800}
TAG = re.compile(r"<[^>]+>")

# Elements wider than the window that is theirs to scroll or clip (a table's scroll box, the
# visually hidden text of screen readers) are not overflowing the page.
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  const hides = (style) => style.clipPath !== 'none' || style.clip !== 'auto';
  const clipped = (element) => {
    let node = element.parentElement;
    for (; node && node !== document.body; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.overflowX !== 'visible' || hides(style)) return true;
    }
    return false;
  };
  const found = [];
  for (const element of document.body.querySelectorAll('*')) {
    const box = element.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if (box.left >= -1 && box.right <= width + 1) continue;
    const style = getComputedStyle(element);
    if (style.position === 'fixed' || hides(style)) continue;
    if (clipped(element)) continue;
    found.push(`${element.tagName.toLowerCase()}.${[...element.classList].join('.')} ` +
               `[${Math.round(box.left)}, ${Math.round(box.right)}]`);
  }
  const sideways = document.documentElement.scrollWidth - width;
  return {sideways, found: found.slice(0, 10)};
}"""


PLACEHOLDER = re.compile(r"%\(\w+\)s|%s")


def catalogue_texts(language: str) -> tuple[list[str], list[str]]:
    """(translated, not yet translated): the English text of the catalogue's messages as a page
    shows it (markup left out). Translated: those the catalogue writes differently, without
    placeholders and of two words or more (a name or a course title may hold a single word).
    Not yet translated: the literal pieces of the others, which a page may still show in
    English while the translators are at work."""
    path = TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalogue = read_po(handle, locale=language)
    translated, pending = [], []
    for message in catalogue:
        if not message.id:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        done = not message.fuzzy and all(strings)
        for text in ids:
            text = " ".join(TAG.sub("", text).split())
            if not done:
                pending += [p.strip() for p in PLACEHOLDER.split(text) if len(p.strip()) > 3]
            elif "%" not in text and text not in strings and len(text.split()) >= 2:
                translated.append(text)
    return translated, sorted(set(pending), key=len, reverse=True)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A portal of its own: the demo accounts' language is changed by these tests."""
    from portal.extensions import db as _db

    app = live_portal_app(tmp_path_factory.mktemp("languages"))
    with serve(app) as url:
        yield LiveServer(url=url, app=app)
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()


def choose_language(live_server: LiveServer, language: str) -> None:
    """Every demo account has chosen `language` on its profile."""
    with live_server.session() as db:
        db.execute(
            update(User).where(User.username.in_(ACCOUNTS.values())).values(language=language)
        )


def main_pages(page: Any) -> list[str]:
    """Home, the top bar's pages and the profile, as links of the home page."""
    links = page.eval_on_selector_all(
        "#nav-links a.nav-link[href], a.nav-user-name[href]",
        "links => links.map(a => new URL(a.href).pathname)",
    )
    return ["/"] + [path for path in dict.fromkeys(links) if path != "/"]


def english_left(page: Any, translated: list[str], pending: list[str]) -> list[str]:
    text = " ".join(page.inner_text("body").split())
    for piece in pending:  # English the catalogue does not translate yet
        text = text.replace(piece, " ")
    return [source for source in translated if source in text]


@pytest.mark.parametrize("language", ["ar", "fr"])
@pytest.mark.parametrize("role", list(ACCOUNTS))
def test_the_main_pages_of_each_role_in_the_persons_language(
    browser: Any, live_server: LiveServer, role: str, language: str
) -> None:
    choose_language(live_server, language)
    translated, pending = catalogue_texts(language)
    assert translated, f"the {language} catalogue translates nothing yet"
    context = browser.new_context(base_url=live_server.url, viewport=WIDE, locale="en-GB")
    context.set_default_timeout(15_000)
    page = context.new_page()
    problems: list[str] = []
    try:
        login_page(page, ACCOUNTS[role])  # the log-in page follows the browser (English)
        page.goto("/")
        paths = main_pages(page)
        assert len(paths) >= 3, paths
        for path in paths:
            page.set_viewport_size(WIDE)
            page.goto(path)
            html = page.locator("html")
            assert html.get_attribute("lang") == language, path
            expected_dir = "rtl" if language == "ar" else "ltr"
            assert html.get_attribute("dir") == expected_dir, path
            if language == "ar" and path == "/":
                save_screenshot(page, f"rtl-{role}-home")
            for size in (WIDE, NARROW):
                page.set_viewport_size(size)
                page.reload()  # laid out for that width from the start (charts size on load)
                layout = page.evaluate(OVERFLOWING)
                if layout["sideways"] > 0 or layout["found"]:
                    problems.append(f"{path} at {size['width']} px: {layout}")
            if language == "ar" and path == "/":
                save_screenshot(page, f"rtl-{role}-home-narrow")
            page.set_viewport_size(WIDE)
            page.reload()
            check_accessible(page)
            if left := english_left(page, translated, pending):
                problems.append(f"{path}: English text left untranslated: {left}")
    finally:
        context.close()
    assert problems == [], f"{role} in {language}:\n" + "\n".join(problems)
