"""marshmallow's own messages about a field ("Missing data for required field.") said in the
request's language: the library writes them in English, so a problem's `errors` translate them
here, when the answer is made. Messages of the portal's own rules are translated already and
pass through as they are."""

from __future__ import annotations

import re

from flask_babel import gettext as _

from portal.languages import N_

# marshmallow's messages that carry no value.
WHOLE = {
    text: text
    for text in (
        N_("Missing data for required field."),
        N_("Field may not be null."),
        N_("Invalid value."),
        N_("Not a valid string."),
        N_("Not a valid utf-8 string."),
        N_("Not a valid integer."),
        N_("Not a valid number."),
        N_("Number too large."),
        N_("Special numeric values (nan or infinity) are not permitted."),
        N_("Not a valid boolean."),
        N_("Not a valid UUID."),
        N_("Not a valid date."),
        N_("Not a valid datetime."),
        N_("Not a valid time."),
        N_("Not a valid aware datetime."),
        N_("Not a valid naive datetime."),
        N_("Not a valid list."),
        N_("Not a valid email address."),
        N_("Invalid type."),
        N_("Invalid input type."),
        N_("Unknown field."),
    )
}

# Those with values, as marshmallow and its validators write them, and the message said instead.
_NUMBER = r"(?P<{}>-?[\d.]+)"
PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            rf"Must be greater than or equal to {_NUMBER.format('min')} "
            rf"and less than or equal to {_NUMBER.format('max')}\."
        ),
        N_("Must be from %(min)s to %(max)s."),
    ),
    (
        re.compile(rf"Must be greater than or equal to {_NUMBER.format('min')}\."),
        N_("Must be %(min)s or more."),
    ),
    (
        re.compile(rf"Must be less than or equal to {_NUMBER.format('max')}\."),
        N_("Must be %(max)s or less."),
    ),
    (
        re.compile(r"Longer than maximum length (?P<max>\d+)\."),
        N_("Longer than %(max)s characters."),
    ),
    (
        re.compile(r"Shorter than minimum length (?P<min>\d+)\."),
        N_("Shorter than %(min)s characters."),
    ),
    (
        re.compile(r"Length must be between (?P<min>\d+) and (?P<max>\d+)\."),
        N_("Must be %(min)s to %(max)s characters long."),
    ),
    (re.compile(r"Must be one of: (?P<choices>.*)\.", re.S), N_("Must be one of: %(choices)s.")),
    (
        re.compile(r'"(?P<input>.*)" cannot be formatted as a (?P<kind>\w+)\.', re.S),
        N_("%(input)s cannot be read as a date or time."),
    ),
)


def translated(message: str) -> str:
    """`message` in the request's language where it is one of marshmallow's own."""
    if message in WHOLE:
        return _(WHOLE[message])
    for pattern, said in PATTERNS:
        if found := pattern.fullmatch(message):
            return _(said, **found.groupdict())
    return message
