"""Course percentages from weighted marks: pure arithmetic, no database.

The rule for missing marks (documented in the README):

* `course_percentage` is the official figure used for the letter grade and for finalising:
  a missing mark counts as zero points.
* `percentage_so_far` is the running figure shown while the term goes on: it averages only the
  assessments that have a mark, re-weighted to 100 %. The provisional letter comes from it, so
  unmarked work never shows as a failing letter; `marked_share` says how much of the course
  it stands on.

Both divide by the total weight, so a gradebook whose weights do not (yet) add up to 100 still
shows sensible numbers; finalising is refused until they do (`weights_problem`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from flask_babel import gettext as _

WEIGHT_TOLERANCE = 0.005


@dataclass(frozen=True)
class WeightedItem:
    """What the arithmetic needs from an assessment."""

    id: uuid.UUID
    weight: float
    max_points: float


def total_weight(items: Iterable[WeightedItem]) -> float:
    return sum(item.weight for item in items)


def weights_problem(items: Iterable[WeightedItem]) -> str | None:
    """A message when the weights do not add up to 100 %, else None."""
    items = list(items)
    if not items:
        return _("There are no assessments yet: add them with weights that add up to 100%.")
    total = total_weight(items)
    if abs(total - 100) <= WEIGHT_TOLERANCE:
        return None
    if total < 100:
        return _(
            "The assessment weights add up to %(total)s%%, not 100%%: %(missing)s%% is not "
            "assigned to any assessment.",
            total=format(total, "g"),
            missing=format(100 - total, "g"),
        )
    return _(
        "The assessment weights add up to %(total)s%%, not 100%%: reduce them by %(over)s%% in "
        "all.",
        total=format(total, "g"),
        over=format(total - 100, "g"),
    )


def _weighted_percent(
    items: Iterable[WeightedItem], share: Callable[[WeightedItem], float]
) -> float | None:
    """Each item's `share` (0 to 1) weighted by its weight, as a percentage of the total
    weight; None when there is no weight at all."""
    items = list(items)
    weight = total_weight(items)
    if weight <= 0:
        return None
    return sum(item.weight * share(item) for item in items) / weight * 100


def course_percentage(
    items: Iterable[WeightedItem], points: Mapping[uuid.UUID, float | None]
) -> float | None:
    """Weighted percentage with missing marks as zero; None when there is no weight at all."""
    return _weighted_percent(
        items, lambda item: min((points.get(item.id) or 0.0) / item.max_points, 1.0)
    )


def percentage_so_far(
    items: Iterable[WeightedItem], points: Mapping[uuid.UUID, float | None]
) -> float | None:
    """Weighted percentage over the assessments that have a mark; None when none has."""
    marked = [item for item in items if points.get(item.id) is not None]
    return course_percentage(marked, points) if marked else None


def marked_share(
    items: Iterable[WeightedItem], points: Mapping[uuid.UUID, float | None]
) -> float | None:
    """The share (0-100 %) of the course's weight that has a mark; None when there is no weight."""
    return _weighted_percent(items, lambda item: float(points.get(item.id) is not None))
