"""Letter grades and their grade points on the 4.0 scale."""

from __future__ import annotations

from collections.abc import Sequence

from flask_babel import gettext as _

from portal.errors import FieldErrors, ValidationError

GRADE_POINTS: dict[str, float] = {
    "A": 4.0,
    "A-": 3.7,
    "B+": 3.3,
    "B": 3.0,
    "B-": 2.7,
    "C+": 2.3,
    "C": 2.0,
    "C-": 1.7,
    "D+": 1.3,
    "D": 1.0,
    "F": 0.0,
}


def grade_points(letter: str) -> float:
    try:
        return GRADE_POINTS[letter]
    except KeyError:
        raise ValidationError(_("%(letter)s is not a letter grade.", letter=repr(letter))) from None


def meets_minimum(letter: str | None, minimum: str) -> bool:
    """True when `letter` is a passing grade at least as good as `minimum`."""
    if letter is None or letter not in GRADE_POINTS:
        return False
    return GRADE_POINTS[letter] >= grade_points(minimum)


# The standard scale: the minimum course percentage for each letter, best letter first.
STANDARD_SCALE: tuple[tuple[str, float], ...] = (
    ("A", 93.0),
    ("A-", 90.0),
    ("B+", 87.0),
    ("B", 83.0),
    ("B-", 80.0),
    ("C+", 77.0),
    ("C", 73.0),
    ("C-", 70.0),
    ("D+", 67.0),
    ("D", 60.0),
    ("F", 0.0),
)

Thresholds = tuple[tuple[str, float], ...]


def scale_problems(thresholds: Sequence[tuple[str, float | str]]) -> dict[str, str]:
    """Every rule a scale breaks, each said once, so that a form shows them all at once: a
    letter's own problem (unknown, not a number, out of range) under the letter, the rules
    between letters (each once, minimums strictly falling, ending at 0) under keys of their
    own. Letters with a problem of their own are left out of the rules between letters."""
    problems: dict[str, str] = {}
    readable: list[tuple[str, float]] = []
    seen: set[str] = set()
    last = ""
    for letter, minimum in thresholds:
        letter = str(letter).strip().upper()
        if letter in seen:
            problems["scale:repeated"] = _("Each letter may appear only once in a grade scale.")
            continue
        seen.add(letter)
        last = letter
        if letter not in GRADE_POINTS:
            problems[letter] = _("%(letter)s is not a letter grade.", letter=repr(letter))
            continue
        try:
            value = float(minimum)
        except (TypeError, ValueError):
            problems[letter] = _("The minimum for %(letter)s must be a number.", letter=letter)
            continue
        if not 0 <= value <= 100:
            problems[letter] = _(
                "The minimum for %(letter)s must be between 0 and 100.", letter=letter
            )
            continue
        readable.append((letter, value))
    if not seen:
        problems["scale:empty"] = _("A grade scale needs at least one letter.")
    for (better, high), (worse, low) in zip(readable, readable[1:], strict=False):
        if low >= high:
            problems[f"scale:below:{worse}"] = _(
                "The minimum for %(worse)s (%(low)s%%) must be lower than for %(better)s "
                "(%(high)s%%).",
                worse=worse,
                low=format(low, "g"),
                better=better,
                high=format(high, "g"),
            )
        if GRADE_POINTS[worse] >= GRADE_POINTS[better]:
            problems[f"scale:order:{worse}"] = _(
                "%(worse)s cannot need less than %(better)s: list best first.",
                worse=worse,
                better=better,
            )
    if readable and readable[-1][0] == last and readable[-1][1] != 0:
        problems["scale:zero"] = _(
            "The lowest letter (%(letter)s) must start at 0%% so every mark gets a grade.",
            letter=readable[-1][0],
        )
    return problems


def validate_scale(thresholds: Sequence[tuple[str, float | str]]) -> Thresholds:
    """A usable scale: known letters, each once, minimums strictly falling, ending at 0.
    Every problem is reported at once (`FieldErrors`, keyed as `scale_problems` keys them)."""
    if problems := scale_problems(thresholds):
        raise FieldErrors(problems)
    return tuple((str(letter).strip().upper(), float(minimum)) for letter, minimum in thresholds)


def letter_for(percentage: float, thresholds: Thresholds = STANDARD_SCALE) -> str:
    """The letter for a course percentage. The percentage is rounded to two decimals first, so
    92.996 % counts as 93 % (what the gradebook shows is what decides)."""
    rounded = round(percentage, 2)
    for letter, minimum in thresholds:
        if rounded >= minimum:
            return letter
    return thresholds[-1][0]


def gpa(courses: list[tuple[int, str | None]]) -> float | None:
    """Credit-weighted grade point average on 4.0 of (credits, letter) pairs.

    Courses with zero credits and courses without a letter grade (in progress) do not count;
    None when nothing counts."""
    total_credits = 0
    total_points = 0.0
    for credits, letter in courses:
        if credits <= 0 or letter is None or letter not in GRADE_POINTS:
            continue
        total_credits += credits
        total_points += credits * GRADE_POINTS[letter]
    if total_credits == 0:
        return None
    return total_points / total_credits
