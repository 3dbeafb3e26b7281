"""Form validators whose messages come from the portal's own catalogues.

WTForms' built-in messages are translated by its own catalogues (Flask-WTF's WTF_I18N_ENABLED,
on by default with Flask-Babel), but its Arabic catalogue gives only two of Arabic's six plural
forms of the length messages (the forms for 0 and 1): a limit of 20, 50 or 100 characters would
be said in English. `length` asks for the same English sentences through the portal's
catalogues, where every plural form of every language is filled in.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from wtforms.validators import Length


def length(*, min: int = -1, max: int = -1) -> Length:  # WTForms' own names
    """`Length(min=..., max=...)` with its message marked for translation."""
    if min == -1:
        message = lazy_ngettext(
            "Field cannot be longer than %(num)d character.",
            "Field cannot be longer than %(num)d characters.",
            max,
        )
    elif max == -1:
        message = lazy_ngettext(
            "Field must be at least %(num)d character long.",
            "Field must be at least %(num)d characters long.",
            min,
        )
    else:  # filled in by Length itself
        message = _l("Field must be between %(min)d and %(max)d characters long.")
    return Length(min=min, max=max, message=message)
