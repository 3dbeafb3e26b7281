"""Marked text is looked up when it is said, in the language of that moment: module-level text
(form labels, problem titles, status phrases) is lazy, not frozen in English at import. The
catalogues here are small ones made by the test (the portal's own are filled by translators)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from flask import Flask
from flask_babel import force_locale
from werkzeug.datastructures import MultiDict

from tests.conftest import make_app

# msgid (or (singular, plural)) -> msgstr (or one per plural form of the language)
FRENCH = {
    "Registration refused": "Inscription refusée",
    "Not Found": "Introuvable",
    "Code": "Code du cours",
    "Campus Portal is already running": "Campus Portal est déjà lancé",
    "Done": "Terminé",
    "Version %(version)s is ready: install on exit": (
        "La version %(version)s est prête : installée à la fermeture"
    ),
    ("%(count)s row can be imported.", "%(count)s rows can be imported."): (
        "%(count)s ligne peut être importée.",
        "%(count)s lignes peuvent être importées.",
    ),
}
# Arabic has six plural forms: zero, one, two, few (3-10), many (11-99), other (100, ...).
ARABIC_LONGER = (
    "لا يزيد الحقل على صفر حرف.",
    "لا يزيد الحقل على حرف واحد.",
    "لا يزيد الحقل على حرفين.",
    "لا يزيد الحقل على %(num)d أحرف.",
    "لا يزيد الحقل على %(num)d حرفًا.",
    "لا يزيد الحقل على %(num)d حرف.",
)
ARABIC = {
    "Code": "الرمز",
    (
        "Field cannot be longer than %(num)d character.",
        "Field cannot be longer than %(num)d characters.",
    ): ARABIC_LONGER,
}


def write_catalogue(folder: Path, language: str, messages: dict) -> None:
    catalog = Catalog(locale=language)
    for msgid, msgstr in messages.items():
        catalog.add(msgid, msgstr)
    target = folder / language / "LC_MESSAGES"
    target.mkdir(parents=True)
    with open(target / "messages.mo", "wb") as handle:
        write_mo(handle, catalog)


@pytest.fixture
def catalogues(tmp_path: Path) -> Path:
    folder = tmp_path / "translations"
    write_catalogue(folder, "fr", FRENCH)
    write_catalogue(folder, "ar", ARABIC)
    return folder


@pytest.fixture
def app(tmp_path: Path, catalogues: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    from portal import i18n
    from portal.extensions import babel

    monkeypatch.setattr(i18n, "TRANSLATIONS", catalogues)
    application = make_app(tmp_path)
    with application.app_context():
        # Flask-Babel keeps the catalogues it loaded per language, for every app of the process.
        cache = babel.domain_instance.cache
    cache.clear()
    yield application
    cache.clear()


def test_a_problem_title_and_a_status_phrase_follow_the_language_of_the_request(
    app: Flask,
) -> None:
    from portal.api import problems
    from portal.errors import RegistrationError

    with app.test_request_context("/api/v1/me/registrations"):
        english = json.loads(problems.from_domain_error(RegistrationError("Full.")).data)
        with force_locale("fr"):
            french = json.loads(problems.from_domain_error(RegistrationError("Full.")).data)
            assert problems.status_title(404) == "Introuvable"
        assert problems.status_title(404) == "Not Found"
    assert english["title"] == "Registration refused"
    assert french["title"] == "Inscription refusée"
    assert french["type"] == english["type"]  # the machine-read part stays as it is


def test_a_form_in_arabic_says_its_label_and_every_length_limit_in_arabic(app: Flask) -> None:
    """WTForms' own Arabic catalogue says "at most 20 characters" in English (it has only the
    plural forms for 0 and 1); portal.validators.length takes it from the portal's."""
    from portal.admin.forms import CourseForm

    data = MultiDict({"code": "X" * 21, "title": "", "department": "Physics", "credits": "3"})
    with app.test_request_context("/admin/courses/new"), force_locale("ar"):
        form = CourseForm(formdata=data, meta={"csrf": False})
        assert not form.validate()
        assert str(form.code.label.text) == "الرمز"
        assert form.code.errors == ["لا يزيد الحقل على 20 حرفًا."]  # "many": 11-99
        assert form.title.errors == ["هذا الحقل مطلوب."]  # WTForms' own catalogue
    with app.test_request_context("/admin/courses/new"):
        form = CourseForm(formdata=data, meta={"csrf": False})
        assert not form.validate()
        assert str(form.code.label.text) == "Code"
        assert form.code.errors == ["Field cannot be longer than 20 characters."]


def test_an_import_reports_in_the_language_of_the_person_who_started_it(app: Flask) -> None:
    """The check runs later, in a worker or a thread, without the person's request."""
    from portal.admin import tasks
    from portal.extensions import db
    from tests import factories

    with app.app_context():
        admin = factories.make_user(db.session, "admin")
        db.session.commit()
        store = tasks.import_store()
        job = store.create(
            "courses", "c.csv", b"code,title,credits,department\nPH101,Optics,3,Physics\n", "a"
        )
        tasks.run_import(job.id, "check", str(admin.id), "fr")
        french = store.get(job.id)
        tasks.run_import(job.id, "check", str(admin.id))
        english = store.get(job.id)
    assert (french.phase, french.step, french.summary) == (
        "checked",
        "Terminé",
        "1 ligne peut être importée.",
    )
    assert (english.step, english.summary) == ("Done", "1 row can be imported.")


def test_the_about_page_says_the_update_state_in_the_persons_language(app: Flask) -> None:
    from flask_babel import gettext

    from desktop.updates import READY, Status

    ready = Status(state=READY, version="0.3.0")
    with app.test_request_context("/about"), force_locale("fr"):
        assert ready.line(gettext) == "La version 0.3.0 est prête : installée à la fermeture"
    assert ready.line() == "Version 0.3.0 is ready: install on exit"  # the log's


def test_the_desktop_says_its_messages_in_the_chosen_language(
    catalogues: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from desktop import i18n

    monkeypatch.setattr(i18n, "TRANSLATIONS", catalogues)
    i18n._translations.cache_clear()
    try:
        i18n.set_language("fr")
        assert i18n.gettext("Campus Portal is already running") == "Campus Portal est déjà lancé"
        assert i18n.direction() == "ltr"
        i18n.set_language("ar")
        assert i18n.direction() == "rtl"
        i18n.set_language(None)
        monkeypatch.setenv("LANGUAGE", "fr_FR:en")
        assert i18n.language() == "fr"
        monkeypatch.setenv("LANGUAGE", "de_DE")  # no catalogue: the next of the user's, or English
        monkeypatch.setenv("LC_ALL", "C.UTF-8")
        assert i18n.language() == "en"
        assert i18n.gettext("Campus Portal is already running") == (
            "Campus Portal is already running"
        )
    finally:
        i18n.set_language(None)
        i18n._translations.cache_clear()


def test_a_device_tells_a_revocation_by_the_problem_type_whatever_the_servers_language() -> None:
    import httpx

    from portal.sync.device.client import Transport
    from portal.sync.protocol import DEVICE_REVOKED

    def answer(problem: dict) -> httpx.Response:
        return httpx.Response(403, json=problem, request=httpx.Request("GET", "https://x/sync"))

    french = answer({"type": DEVICE_REVOKED, "status": 403, "detail": "Cet appareil a été retiré."})
    refused = answer({"type": "about:blank", "status": 403, "detail": "Appareil inconnu."})
    assert Transport._problem(french).reason == "revoked"
    assert str(Transport._problem(french)) == "Cet appareil a été retiré."
    assert Transport._problem(refused).reason == "refused"


def test_the_desktop_reads_the_portals_catalogues_without_importing_the_portal() -> None:
    import subprocess
    import sys

    from desktop import i18n
    from portal.i18n import TRANSLATIONS

    assert i18n.TRANSLATIONS == TRANSLATIONS
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, desktop.i18n; print('portal' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "False"  # the window's process starts without it
