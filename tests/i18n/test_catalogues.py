"""The translations are complete and sound (part of `make test`):

(a) every piece of template text a person reads is marked for translation;
(b) every message of a freshly extracted template is translated in the Arabic and French
    catalogues (not missing, not empty, not fuzzy). This one fails while the translators are
    still at work: it lists what is left;
(c) every catalogue compiles, and each translation keeps its message's placeholders.

Python files are checked for unmarked strings by tests/i18n's AST check of the Python side.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask

from tests.i18n.templates_text import unmarked_text

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "portal" / "translations"
TEMPLATES = ROOT / "portal" / "templates"
TRANSLATED = ("ar", "fr")  # English is the source language: its catalogue may stay empty
LANGUAGES = ("en", *TRANSLATED)
PLACEHOLDER = re.compile(r"%\(\w+\)[sdifr]|%[sdifr]")


def _placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text.replace("%%", "")))


def _catalogue(language: str) -> Catalog:
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=language)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The messages the code marks now, extracted as `make messages` does."""
    pot = tmp_path_factory.mktemp("extract") / "messages.pot"
    command = ["pybabel", "-q", "extract", "-F", str(TRANSLATIONS / "babel.cfg")]
    command += ["-k", "_l", "-k", "lazy_gettext", "-o", str(pot), str(ROOT)]
    CommandLineInterface().run(command)
    with pot.open("rb") as handle:
        return read_po(handle)


def test_every_template_text_is_marked_for_translation(app: Flask) -> None:
    found = unmarked_text(app.jinja_env, TEMPLATES)
    assert not found, (
        f"{len(found)} pieces of template text are not marked for translation "
        "(use {{ _('...') }} or {% trans %}...{% endtrans %}; translate=\"no\" for code):\n"
        + "\n".join(str(item) for item in found)
    )


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated(extracted: Catalog, language: str) -> None:
    """Fails until the translators have translated every message (expected while they work)."""
    catalogue = _catalogue(language)
    missing, untranslated, fuzzy = [], [], []
    for message in extracted:
        if not message.id:
            continue
        found = catalogue.get(message.id, message.context)
        if found is None:
            missing.append(message.id)
        elif found.fuzzy:
            fuzzy.append(message.id)
        elif not found.string or (not isinstance(found.string, str) and not all(found.string)):
            untranslated.append(message.id)
    problems = [
        *(f"missing (run `make messages`): {m!r}" for m in missing),
        *(f"fuzzy: {m!r}" for m in fuzzy),
        *(f"not translated: {m!r}" for m in untranslated),
    ]
    assert not problems, (
        f"{language}: {len(problems)} of {len(extracted)} messages are not ready:\n"
        + "\n".join(str(p) for p in problems[:200])
    )


# The count of a plural message ("%(num)d days"; else its first placeholder, "%(errors)s
# problems found"), which a form for one number may say in words instead ("one day", Arabic's
# "يومان" for two).
COUNTS = {"%(num)s", "%(num)d", "%(count)s", "%(count)d"}


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_catalogue_compiles_and_keeps_its_placeholders(language: str) -> None:
    catalogue = _catalogue(language)
    errors = [f"{message.id!r}: {error}" for message, found in catalogue.check() for error in found]
    for message in catalogue:
        if not message.id or not message.string:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        allowed = {p for text in ids for p in _placeholders(text)}
        # A plural's forms may leave out the count ("one day"), never another placeholder.
        first = PLACEHOLDER.findall(ids[0].replace("%%", ""))[:1]
        counts = COUNTS | set(first) if len(ids) > 1 else set()
        needed = {p for p in _placeholders(ids[-1]) if p.startswith("%(") and p not in counts}
        for string in strings:
            if string and (extra := _placeholders(string) - allowed):
                errors.append(f"{message.id!r}: {string!r} has {sorted(extra)}, unknown")
            if string and (lacking := needed - _placeholders(string)):
                errors.append(f"{message.id!r}: {string!r} leaves out {sorted(lacking)}")
    assert not errors, "\n".join(errors)
    write_mo(io.BytesIO(), catalogue)  # raises on a catalogue that cannot be compiled
