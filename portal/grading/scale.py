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


def validate_scale(thresholds: list[tuple[str, float]] | Thresholds) -> Thresholds:
    """A usable scale: known letters, each once, minimums strictly falling, ending at 0."""
    cleaned: list[tuple[str, float]] = []
    for letter, minimum in thresholds:
        letter = str(letter).strip().upper()
        if letter not in GRADE_POINTS:
            raise ValidationError(f"{letter!r} is not a letter grade.")
        try:
            value = float(minimum)
        except (TypeError, ValueError):
            raise ValidationError(f"The minimum for {letter} must be a number.") from None
        if not 0 <= value <= 100:
            raise ValidationError(f"The minimum for {letter} must be between 0 and 100.")
        cleaned.append((letter, value))
    if not cleaned:
        raise ValidationError("A grade scale needs at least one letter.")
    letters = [letter for letter, _ in cleaned]
    if len(set(letters)) != len(letters):
        raise ValidationError("Each letter may appear only once in a grade scale.")
    for (better, high), (worse, low) in zip(cleaned, cleaned[1:], strict=False):
        if low >= high:
            raise ValidationError(
                f"The minimum for {worse} ({low:g}%) must be lower than for {better} ({high:g}%)."
            )
        if GRADE_POINTS[worse] >= GRADE_POINTS[better]:
            raise ValidationError(f"{worse} cannot need less than {better}: list best first.")
    if cleaned[-1][1] != 0:
        raise ValidationError(
            f"The lowest letter ({cleaned[-1][0]}) must start at 0% so every mark gets a grade."
        )
    return tuple(cleaned)


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
