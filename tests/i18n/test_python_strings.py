"""Every text a person reads from the Python code is marked for translation (tests/i18n/
python_strings.py says where that text goes), and what is marked can be extracted."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.i18n.python_strings import (
    Finding,
    check_sources,
    extracted_messages,
    python_files,
)

ROOT = Path(__file__).resolve().parents[2]

# Text that stays English on purpose: (file, the start of the text) -> why.
ALLOWED = {
    ("portal/config.py", "settings file {}"): (
        "a settings warning for IT: written to the log as well, in the README's words"
    ),
    ("portal/sync/server/files.py", "expected offset"): (
        "for the device's upload, which resumes from `received`: never shown to a person"
    ),
}
# Modules being reworked on their own: their messages are marked when that work lands. Remove
# an entry once its module is clean (the test below says so when it is).
NOT_YET: dict[str, str] = {}


def _allowed(finding: Finding) -> bool:
    return any(
        finding.path == path and finding.text.startswith(start) for path, start in ALLOWED
    ) or finding.path.startswith(tuple(NOT_YET))


@pytest.fixture(scope="module")
def findings() -> list[Finding]:
    return check_sources(python_files(ROOT, ["portal", "desktop"], ["portal/migrations"]))


def test_every_text_a_person_reads_is_marked_for_translation(findings: list[Finding]) -> None:
    unmarked = [str(finding) for finding in findings if not _allowed(finding)]
    assert not unmarked, "\n".join(unmarked)


def test_the_allow_lists_name_only_what_is_still_there(findings: list[Finding]) -> None:
    for path, start in ALLOWED:
        assert any(f.path == path and f.text.startswith(start) for f in findings), (
            f"{path}: {start!r} is marked now: take it off ALLOWED"
        )
    for prefix in NOT_YET:
        assert any(f.path.startswith(prefix) for f in findings), (
            f"{prefix} is clean now: take it off NOT_YET"
        )


SAMPLE = """
from flask import abort, flash
from flask_babel import gettext as _, lazy_gettext as _l, ngettext
from wtforms import StringField
from wtforms.validators import DataRequired, EqualTo, Length

from portal.errors import PortalError


class Refused(PortalError):
    pass


class Form:
    name = StringField("Full name", validators=[DataRequired("Give a name.")])  # 2
    title = StringField(_l("Title"), description="Up to 200 letters.")  # 1
    kind = StringField(_l("Kind"), choices=[("a", "Lecture"), ("b", _l("Lab"))])  # 1
    code = StringField(_l("Code"), validators=[Length(max=20)])  # 1: Length without a message
    same = StringField(_l("Again"), validators=[EqualTo("x", message="Not the same.")])  # 1
    fine = StringField(_l("Code"), validators=[Length(max=20, message=_l("Too long."))])


def view(user, count):
    flash(f"Welcome, {user}.", "success")  # 1
    flash(_("Welcome, %(user)s.", user=user), "success")
    message = "Saved." if count else _("Nothing to save.")  # 1 (the first branch)
    flash(message)
    log.info("saved %s rows for %s", count, user)
    if user == "Nobody at all":  # compared, not shown
        abort(404, "There is nothing here.")  # 1
    errors = {}
    errors["name"] = "A name is required."  # 1
    errors["code"] = _("A code is required.")
    if errors:
        raise Refused(errors)
    raise Refused("You may not do this.")  # 1
    raise Refused("invalid_grant")  # a code for the client, not words
    raise Refused(ngettext("%(num)d seat", "%(num)d seats", count))


def shadowed(rows):
    values, _ = rows  # `_` is now rows' second item
    return _("Saved.")  # 1


def problem_answer():
    return problem(409, title="Refused", detail=_("It was refused."))  # 1


def f_string_inside(user):
    return flash(_(f"Hello {user}"))  # 1: formatted before it is looked up


def placeholder_without_value(user):
    return flash(_("Hello %(user)s, you have %(count)s messages.", user=user))  # 1: count


def f_string_among_values(when):
    return flash(_("Saved at %(when)s.", when=f"{when:%H:%M}"))  # 1: pybabel warns
"""


def test_the_checker_finds_each_kind_of_unmarked_text() -> None:
    found = check_sources({"portal/sample.py": textwrap.dedent(SAMPLE)})
    lines = SAMPLE.splitlines()
    expected = {
        number: int(line.split("# ")[1][0])
        for number, line in enumerate(lines, start=1)
        if "# " in line and line.split("# ")[1][:1].isdigit()
    }
    counted: dict[int, int] = {}
    for finding in found:
        counted[finding.line] = counted.get(finding.line, 0) + 1
    assert counted == expected, "\n".join(map(str, found))


def test_the_checker_fails_on_a_deliberately_unmarked_flash() -> None:
    marked = (
        "from flask import flash\n"
        "from flask_babel import gettext as _\n"
        "\n"
        "def v():\n"
        '    flash(_("Saved."))\n'
    )
    assert check_sources({"portal/a.py": marked}) == []
    unmarked = marked.replace('_("Saved.")', '"Saved."')
    (finding,) = check_sources({"portal/a.py": unmarked})
    assert (finding.path, finding.line, finding.text) == ("portal/a.py", 5, "Saved.")
    assert str(finding).startswith("portal/a.py:5: flash(): 'Saved.'")


def test_what_is_marked_is_extracted_with_the_lazy_and_plural_keywords() -> None:
    """pybabel extract needs `-k _l -k lazy_ngettext:1,2` besides its default keywords
    (portal/translations/babel.cfg): these messages are only reachable through them."""
    messages = extracted_messages(ROOT)
    assert "Save" in messages  # a form label (_l)
    assert "Registration refused" in messages  # an API problem title (_l)
    assert "Field cannot be longer than %(num)d characters." in messages  # lazy_ngettext
    assert "Campus Portal is starting" in messages  # the desktop (N_)
    assert "Sync did not complete" in messages  # the desktop (_)
    assert "You logged in" not in messages
