"""Dates, times, numbers, GPAs and percentages in the person's language and the campus time
zone. Compared by reading the text back with Babel in the same language (never against literal
strings, which change with CLDR's versions)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest
from babel.dates import format_date, parse_date, parse_time
from babel.numbers import parse_decimal
from flask import Flask

from portal import i18n
from tests.conftest import make_app

LANGUAGES = ("en", "ar", "fr")
LATIN_DIGITS = set("0123456789")
OTHER_DIGITS = {chr(c) for c in range(0x660, 0x66A)} | {chr(c) for c in range(0x6F0, 0x6FA)}


@pytest.fixture(scope="module")
def tokyo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """A campus in Tokyo (UTC+9, no summer time): a moment's local day and hour differ from
    UTC's."""
    yield make_app(tmp_path_factory.mktemp("tokyo"), TIMEZONE="Asia/Tokyo")


def _in(app: Flask, language: str):  # type: ignore[no-untyped-def]
    return app.test_request_context("/", headers={"Accept-Language": language})


def _number(text: str, language: str) -> Decimal:
    """A formatted number read back in its language (percent sign and spaces left out)."""
    cleaned = text.replace("%", "").replace("\u200e", "").replace("\u200f", "").strip()
    cleaned = cleaned.replace("\u061c", "").strip()
    return parse_decimal(cleaned, locale=language, strict=False)


@pytest.mark.parametrize("language", LANGUAGES)
def test_numbers_read_back_to_their_value_with_latin_digits(tokyo: Flask, language: str) -> None:
    with _in(tokyo, language):
        assert i18n.language() == language
        for value in (0, 7, 1234, 1234567):
            text = i18n.format_number(value)
            assert _number(text, language) == value
            assert not set(text) & OTHER_DIGITS
        assert _number(i18n.format_number(12345.678), language) == Decimal("12345.678")
        assert _number(i18n.format_gpa(3.6666), language) == Decimal("3.67")
        assert _number(i18n.format_gpa(4), language) == Decimal("4.00")
        assert i18n.format_gpa(None) == i18n.EMPTY


@pytest.mark.parametrize("language", LANGUAGES)
def test_percentages_read_back_and_carry_the_sign(tokyo: Flask, language: str) -> None:
    with _in(tokyo, language):
        for value, places, expected in (
            (87.5, 1, "87.5"),
            (100, 1, "100"),
            (66.666, 1, "66.7"),
            (66.666, 0, "67"),
            (0, 1, "0"),
        ):
            text = i18n.format_percent(value, places)
            assert "%" in text or "٪" in text
            assert _number(text.replace("٪", ""), language) == Decimal(expected), text
        text = i18n.format_percent(0.875, ratio=True)
        assert _number(text.replace("٪", ""), language) == Decimal("87.5")


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_moment_is_shown_in_the_campus_time_zone(tokyo: Flask, language: str) -> None:
    # 20:30 UTC on 31 March is 05:30 on 1 April in Tokyo.
    moment = datetime(2026, 3, 31, 20, 30, tzinfo=UTC)
    with _in(tokyo, language):
        # Read back where Babel can (numeric forms); the medium form (month names) by
        # locale-aware equality with Babel's own writing of the expected local day.
        assert parse_date(i18n.format_date(moment, "short"), locale=language) == date(2026, 4, 1)
        assert i18n.format_date(moment) == format_date(date(2026, 4, 1), "medium", locale=language)
        hour = i18n.format_time(moment)
        assert parse_time(hour, locale=language, format="short") == time(5, 30)
        both = i18n.format_datetime(moment)
        assert not set(both) & OTHER_DIGITS
        assert "30" in both and "2026" in both


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_day_is_written_in_the_language(tokyo: Flask, language: str) -> None:
    with _in(tokyo, language):
        text = i18n.format_date(date(2026, 9, 14), "short")
        assert parse_date(text, locale=language, format="short") == date(2026, 9, 14)
        assert i18n.format_date(None) == i18n.EMPTY


def test_french_and_english_write_the_same_number_differently(tokyo: Flask) -> None:
    """The separators really come from the language (a formatter ignoring it would pass the
    read-back tests above in English only)."""
    with _in(tokyo, "fr"):
        french = i18n.format_number(1234.5)
    with _in(tokyo, "en"):
        english = i18n.format_number(1234.5)
    assert french != english
    assert _number(french, "fr") == _number(english, "en") == Decimal("1234.5")


def test_the_default_time_zone_is_the_servers_own(tmp_path: Path) -> None:
    from babel.localtime import get_localzone

    app = make_app(tmp_path)
    zone = get_localzone()
    name = getattr(zone, "key", None) or getattr(zone, "zone", None) or str(zone)
    assert app.config["PORTAL"]["TIMEZONE"] in (name, "UTC")


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_meeting_names_its_day_in_the_persons_language(tokyo: Flask, language: str) -> None:
    from babel.dates import get_day_names

    from portal.models import meeting_label

    with _in(tokyo, language):
        for weekday in range(7):
            label = meeting_label(weekday, time(9), time(10, 30))
            day, hours = label.split(" ", 1)
            english = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[weekday]
            assert day in (get_day_names("abbreviated", locale=language)[weekday], english)
            assert (language == "en") == (day == english)
            assert hours == "09:00–10:30"


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_registration_deadline_is_said_in_the_campus_zone(tokyo: Flask, language: str) -> None:
    """The deadline in a refusal's message: the campus day (Tokyo's 4 June for 3 June 20:00
    UTC), in the person's language, with the zone named."""
    from portal.registration.services import _format_when

    with _in(tokyo, language):
        text = _format_when(datetime(2026, 6, 3, 20, 0, tzinfo=UTC))
        assert text.endswith("(Asia/Tokyo)")
        local_day = format_date(date(2026, 6, 4), "medium", locale=language)
        assert local_day in text
