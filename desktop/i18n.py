"""The launcher's own messages (the starting page, "already running", the problems shown in a
window) in the language of the computer's user.

They are said before the portal is up and outside its requests, so Flask-Babel (which answers
from a request's language) cannot translate them: this reads the portal's catalogues
(portal/translations, the `messages` domain) with Babel directly. The language is the first of
the operating system's languages (`LANGUAGE`, `LC_ALL`, `LC_MESSAGES`, `LANG`; the user's locale
on Windows and macOS) that has a catalogue, else English. Output for scripts and the log stays
English: only text a person reads in a window or a page goes through here.
"""

from __future__ import annotations

import importlib.util
import locale
import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING


def _translations_folder() -> Path:
    """portal/translations (portal.i18n.TRANSLATIONS), found without importing the portal: the
    window's process says messages too, and starts faster without it."""
    spec = importlib.util.find_spec("portal")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) / "translations" if locations else Path()


TRANSLATIONS = _translations_folder()


if TYPE_CHECKING:  # Babel is imported when a message is first said (the window's process)
    from babel.support import LazyProxy, NullTranslations

SOURCE_LANGUAGE = "en"
_chosen: str | None = None


def available_languages() -> set[str]:
    """English (the source text) and every language with a catalogue."""
    found = {SOURCE_LANGUAGE}
    if TRANSLATIONS.is_dir():
        found |= {
            folder.name
            for folder in TRANSLATIONS.iterdir()
            if (folder / "LC_MESSAGES" / "messages.mo").is_file()
        }
    return found


def _system_languages() -> list[str]:
    names: list[str] = []
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        names += [name for name in os.environ.get(variable, "").split(":") if name]
    if not names:
        try:
            user_locale = locale.getlocale()[0]
        except ValueError:
            user_locale = None
        if user_locale:
            names.append(user_locale)
    return names


def system_language() -> str:
    """The first of the user's languages that has a catalogue; English when none has one."""
    available = available_languages()
    for name in _system_languages():
        code = name.split(".")[0].split("@")[0].replace("-", "_")
        for candidate in (code, code.split("_")[0]):
            if candidate in available:
                return candidate
        if code in {"C", "POSIX"}:
            return SOURCE_LANGUAGE
    return SOURCE_LANGUAGE


def set_language(code: str | None) -> None:
    """Say the launcher's messages in `code` from now on (None: the system's language again)."""
    global _chosen
    _chosen = code


def language() -> str:
    return _chosen or system_language()


def direction() -> str:
    """ "rtl" or "ltr": the direction of the launcher's language, for its pages' `dir`."""
    from babel import Locale

    return "rtl" if Locale.parse(language()).character_order == "right-to-left" else "ltr"


@cache
def _translations(code: str) -> NullTranslations:
    from babel.support import NullTranslations, Translations

    if code == SOURCE_LANGUAGE:
        return NullTranslations()
    return Translations.load(str(TRANSLATIONS), [code], domain="messages")


def gettext(message: str, **variables: object) -> str:
    """`message` in the launcher's language; `%(name)s` filled from `variables`."""
    text = _translations(language()).gettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, num: int, **variables: object) -> str:
    variables.setdefault("num", num)
    return _translations(language()).ngettext(singular, plural, num) % variables


def lazy_gettext(message: str, **variables: object) -> LazyProxy:
    """A module-level message, translated each time it is used."""
    from babel.support import LazyProxy

    return LazyProxy(gettext, message, enable_cache=False, **variables)


def N_(message: str) -> str:
    """Marks `message` for the catalogue where it is defined; it is translated where it is
    shown (`_(CONSTANT)`), so the constant itself stays the English text."""
    return message


_ = gettext
_l = lazy_gettext
