"""The portal's languages: their codes, their own names and their writing direction.

Free of Flask: the services (a person's choice on the profile page, a device's pushed change)
check a language against this list too. portal/i18n.py picks a request's language from it.
"""

from __future__ import annotations

# Code -> the language's name in itself (a person looks for their own language by its own name).
LANGUAGES: dict[str, str] = {"en": "English", "ar": "العربية", "fr": "Français"}
RIGHT_TO_LEFT = frozenset({"ar"})
DEFAULT = "en"  # the language the source text is written in (the catalogues' msgids)


def direction(code: str) -> str:
    """`rtl` or `ltr`: the `dir` of a page in this language."""
    return "rtl" if code.split("_")[0] in RIGHT_TO_LEFT else "ltr"


def N_(message: str) -> str:
    """Marks a module-level message for the catalogue (pybabel's `N_` keyword) without
    translating it: it is translated where it is shown, with gettext (a message flashed or kept
    in an exception is a plain string, never a lazy one)."""
    return message
