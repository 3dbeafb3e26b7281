"""The person's language: which catalogue (portal/translations) a request is answered from,
and how dates and numbers are written in it.

A request's language is the one the signed-in person chose on their profile (users.language),
else the best match of the browser's Accept-Language among the portal's languages, else IT's
`default_language` setting. The REST API takes its request's Accept-Language before the
person's choice (a script asks for the language of the problems it reads). Dates and times are
shown in the campus time zone (`timezone`).

Numbers keep Latin digits (0-9) in every language, Arabic included: CLDR's `ar` writes them so
by default (its `latn` numbering system), marks and student numbers are typed with them, and a
page never mixes two kinds of digits. Babel is asked for `latn` explicitly, so that a future
regional variant (ar_EG, whose default is `arab`) stays the same.
"""

from __future__ import annotations

import copy
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from babel import Locale, negotiate_locale
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from babel.numbers import NumberPattern, parse_pattern
from babel.support import NullTranslations
from flask import Flask, current_app, g, has_request_context, request
from flask_babel import get_locale, get_timezone, get_translations
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from portal.languages import DEFAULT, LANGUAGES, direction

TRANSLATIONS = Path(__file__).with_name("translations")
API_PREFIX = "/api/"  # the REST API answers in its request's Accept-Language first
NUMBERING = "latn"  # Latin digits in every language (see above)
EMPTY = "—"  # a date or number that is not there
BIDI_ISOLATE = Markup("<bdi>%s</bdi>")


def select_locale() -> str:
    """The language of the current request."""
    if not has_request_context():
        return _default_language()
    asked = _browser_language(request.headers.get("Accept-Language", ""))
    if asked and request.path.startswith(API_PREFIX):
        return asked  # a program says which language it wants its problems in
    user = g.get("_login_user")  # Flask-Login's, once loaded for this request
    if user is None:
        try:
            user = current_user._get_current_object()
        except SQLAlchemyError:  # the database failed (a held lock): its error page still
            user = None  # gets a language, the browser's
    if user is not None and user.is_authenticated and (chosen := user.language) in LANGUAGES:
        return str(chosen)
    return asked or _default_language()


@lru_cache(maxsize=256)
def _browser_language(header: str) -> str | None:
    """The first language of the browser's list (by its weights) that the portal has, a
    regional one counting as its language ("fr-CA" is French)."""
    if not header:
        return None
    wanted = [value for value, _quality in parse_accept_header(header, LanguageAccept)]
    found = negotiate_locale(wanted, list(LANGUAGES), sep="-")
    return found.split("-")[0].lower() if found else None


def _default_language() -> str:
    try:
        return str(current_app.config["PORTAL"]["DEFAULT_LANGUAGE"])
    except (RuntimeError, KeyError):
        return DEFAULT


def select_timezone() -> str:
    """The campus time zone: the `timezone` setting (the server's own zone when not set)."""
    return str(current_app.config["PORTAL"].get("TIMEZONE") or "UTC")


_KEPT = "portal_translations"  # (the locale it is for, its catalogue), on Flask-Babel's state


def translations() -> NullTranslations:
    """The current request's catalogue, found once per request and locale.

    Flask-Babel looks the catalogue up again for every string (its request state, locale and
    domain through Flask's context proxies), and a page says a hundred strings or more: that
    lookup was a third of the CPU of rendering a page. The catalogue found is kept on
    Flask-Babel's own request state beside the locale it is for, so `refresh()` and
    `force_locale()`, which change that locale, are still obeyed.
    """
    try:
        state = g.get("_flask_babel")
    except RuntimeError:  # no application context
        return get_translations()
    if state is not None:
        kept = state.__dict__.get(_KEPT)
        if kept is not None and kept[0] is state.__dict__.get("babel_locale"):
            return cast(NullTranslations, kept[1])
    found = get_translations()
    state = g.get("_flask_babel")
    if state is not None:
        setattr(state, _KEPT, (getattr(state, "babel_locale", None), found))
    return found


def _install_template_gettext(app: Flask) -> None:
    """Templates translate through `translations()`, with Jinja's own newstyle gettext rules
    (autoescaped, always a format string); `_` is bound to `gettext` itself instead of
    Jinja's alias, which looks `gettext` up again in the template's context on every call."""
    environment = app.jinja_env
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda string: translations().ugettext(string),
        ngettext=lambda singular, plural, n: translations().ungettext(singular, plural, n),
        newstyle=True,
        pgettext=lambda context, string: translations().upgettext(context, string),
        npgettext=lambda context, singular, plural, n: translations().unpgettext(
            context, singular, plural, n
        ),
    )
    environment.globals["_"] = environment.globals["gettext"]


def language() -> str:
    """The current request's language code ("en", "ar", "fr")."""
    return str(get_locale() or DEFAULT)


@lru_cache(maxsize=16)
def _locale(code: str) -> Locale:
    return Locale.parse(code)


def _current_locale() -> Locale:
    found = get_locale()
    return found if found is not None else _locale(DEFAULT)


# --- Formatting, in the request's language and the campus time zone ---------------------------


def format_datetime(value: datetime | None, width: str = "medium") -> str:
    """A moment (stored in UTC) in the campus time zone: "4 Mar 2026, 13:05" in the person's
    language. `width`: "short", "medium" (date and time to the minute), "long"."""
    if value is None:
        return EMPTY
    locale = _current_locale()
    local = value.astimezone(get_timezone()) if value.tzinfo else value
    pattern = _datetime_pattern(str(locale), width)
    return babel_dates.format_datetime(local, pattern, locale=locale)


@lru_cache(maxsize=64)
def _datetime_pattern(code: str, width: str) -> str:
    """The locale's date-and-time pattern for `width`, to the minute (no seconds)."""
    locale = _locale(code)
    date_part = locale.date_formats[width].pattern
    time_part = locale.time_formats["short"].pattern
    joined = locale.datetime_formats[width]
    return str(joined).replace("{1}", date_part).replace("{0}", time_part)


def format_date(value: date | datetime | None, width: str = "medium") -> str:
    """A day, in the person's language ("4 Mar 2026"); a moment's day in the campus zone."""
    if value is None:
        return EMPTY
    if isinstance(value, datetime):
        value = value.astimezone(get_timezone()) if value.tzinfo else value
        value = value.date()
    return babel_dates.format_date(value, width, locale=_current_locale())


def format_time(value: time | datetime | None, width: str = "short") -> str:
    """A time of day ("13:05", "1:05 PM"); a moment's in the campus zone."""
    if value is None:
        return EMPTY
    if isinstance(value, datetime):
        value = (value.astimezone(get_timezone()) if value.tzinfo else value).time()
    return babel_dates.format_time(value, width, locale=_current_locale())


@lru_cache(maxsize=64)
def _number_pattern(code: str, kind: str, least: int, most: int) -> NumberPattern:
    """The language's own decimal or percent pattern (its spacing, its sign's place) with
    `least` to `most` decimals."""
    locale = _locale(code)
    formats = locale.percent_formats if kind == "percent" else locale.decimal_formats
    pattern = copy.copy(parse_pattern(formats[None]))
    pattern.frac_prec = (least, most)
    return pattern


def format_number(value: int | float | Decimal | None, places: int | None = None) -> str:
    """A count or amount with the language's separators ("1,234", "1 234"); `places`: exactly
    so many decimals."""
    if value is None:
        return EMPTY
    locale = _current_locale()
    if places is None:
        return babel_numbers.format_decimal(value, locale=locale, numbering_system=NUMBERING)
    pattern = _number_pattern(str(locale), "decimal", places, places)
    return pattern.apply(Decimal(str(value)), locale, numbering_system=NUMBERING)


def format_gpa(value: float | Decimal | None, places: int = 2) -> str:
    """A grade point average: always two decimals ("3.67", "3,67")."""
    return format_number(value, places=places)


def format_percent(
    value: float | Decimal | None, places: int = 1, *, ratio: bool = False, fixed: bool = True
) -> str:
    """A percentage with `places` decimals ("87.5%", "87,5 %"; `fixed=False`: at most so many,
    "25%" for a weight). `value` is in percent (87.5) unless `ratio` (0.875)."""
    if value is None:
        return EMPTY
    fraction = Decimal(str(value)) if ratio else Decimal(str(value)) / 100
    locale = _current_locale()
    pattern = _number_pattern(str(locale), "percent", places if fixed else 0, places)
    return pattern.apply(fraction, locale, numbering_system=NUMBERING)


def isolate(value: Any) -> Markup:
    """A value kept in its own direction inside a sentence of the other one: a letter grade
    ("D+", "A-") in an Arabic page would otherwise show its sign on the wrong side ("+D")."""
    text = EMPTY if value is None or value == "" else value
    return BIDI_ISOLATE % text  # escapes the value


def page_language() -> dict[str, Any]:
    """`lang` and `dir` of <html> (base.html and every other top-level template), and the
    campus time zone's name for the pages that name it."""
    code = language()
    return {
        "page_lang": code.replace("_", "-"),
        "page_dir": direction(code),
        "time_zone": select_timezone(),  # the zone dates and times are shown in
    }


def init_app(app: Flask) -> None:
    """Filters and globals of every template: formatting through Babel, the page's language."""
    _install_template_gettext(app)
    app.context_processor(page_language)
    app.add_template_filter(format_datetime, "datetime")
    app.add_template_filter(format_date, "date")
    app.add_template_filter(format_time, "time")
    app.add_template_filter(format_number, "number")
    app.add_template_filter(format_gpa, "gpa")
    app.add_template_filter(format_percent, "percent")
    app.add_template_filter(isolate, "isolate")
