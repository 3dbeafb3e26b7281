"""Letter grades and their grade points on the 4.0 scale."""

from __future__ import annotations

from portal.errors import ValidationError

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
        raise ValidationError(f"{letter!r} is not a letter grade.") from None


def meets_minimum(letter: str | None, minimum: str) -> bool:
    """True when `letter` is a passing grade at least as good as `minimum`."""
    if letter is None or letter not in GRADE_POINTS:
        return False
    return GRADE_POINTS[letter] >= grade_points(minimum)
