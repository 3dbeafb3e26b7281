"""Grade arithmetic: weights, missing marks, scales, GPA (pure functions, no database)."""

from __future__ import annotations

import uuid

import pytest

from portal.errors import ValidationError
from portal.grading.calculation import (
    WeightedItem,
    course_percentage,
    percentage_so_far,
    weights_problem,
)
from portal.grading.scale import STANDARD_SCALE, gpa, letter_for, validate_scale


def item(weight: float, max_points: float = 10) -> WeightedItem:
    return WeightedItem(uuid.uuid4(), weight, max_points)


def test_weighted_percentage_uses_each_weight_and_maximum():
    lab, exam = item(40, max_points=20), item(60, max_points=50)
    points = {lab.id: 15.0, exam.id: 40.0}  # 75 % and 80 %
    assert course_percentage([lab, exam], points) == pytest.approx(0.4 * 75 + 0.6 * 80)


def test_missing_marks_count_as_zero_in_the_course_percentage():
    lab, exam = item(50), item(50)
    assert course_percentage([lab, exam], {lab.id: 10.0}) == pytest.approx(50.0)


def test_percentage_so_far_uses_only_marked_assessments():
    lab, exam = item(25), item(75)
    assert percentage_so_far([lab, exam], {lab.id: 8.0}) == pytest.approx(80.0)
    assert percentage_so_far([lab, exam], {}) is None


def test_cleared_mark_is_missing():
    lab = item(100)
    assert course_percentage([lab], {lab.id: None}) == 0
    assert percentage_so_far([lab], {lab.id: None}) is None


def test_no_weight_gives_no_percentage():
    assert course_percentage([], {}) is None
    zero = item(0)
    assert course_percentage([zero], {zero.id: 5.0}) is None


def test_weights_not_adding_up_are_explained():
    assert weights_problem([item(40), item(60)]) is None
    assert weights_problem([item(33.333), item(33.333), item(33.334)]) is None
    under = weights_problem([item(40), item(40)])
    assert under is not None and "80%" in under and "20%" in under
    over = weights_problem([item(70), item(40)])
    assert over is not None and "110%" in over and "reduce" in over
    assert "no assessments" in (weights_problem([]) or "")


def test_percentage_is_normalised_when_weights_do_not_add_up():
    lab, exam = item(30), item(30)
    assert course_percentage([lab, exam], {lab.id: 10.0, exam.id: 5.0}) == pytest.approx(75.0)


@pytest.mark.parametrize(
    ("percentage", "letter"),
    [
        (100, "A"),
        (93, "A"),
        (92.996, "A"),  # rounded to two decimals first: 93.00
        (92.99, "A-"),
        (90, "A-"),
        (89.99, "B+"),
        (73, "C"),
        (60, "D"),
        (59.99, "F"),
        (0, "F"),
    ],
)
def test_standard_scale(percentage, letter):
    assert letter_for(percentage, STANDARD_SCALE) == letter


def test_custom_scale():
    scale = validate_scale([("A", 80), ("B", 65), ("C", 50), ("F", 0)])
    assert letter_for(81, scale) == "A"
    assert letter_for(64.99, scale) == "C"
    assert letter_for(10, scale) == "F"


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ([("A", 90), ("Z", 0)], "not a letter grade"),
        ([("A", 90), ("A", 80), ("F", 0)], "only once"),
        ([("A", 80), ("B", 85), ("F", 0)], "must be lower"),
        ([("B", 90), ("A", 80), ("F", 0)], "best first"),
        ([("A", 90), ("F", 10)], "start at 0%"),
        ([("A", 120), ("F", 0)], "between 0 and 100"),
        ([], "at least one"),
    ],
)
def test_invalid_scales_are_refused_with_a_reason(thresholds, message):
    with pytest.raises(ValidationError, match=message):
        validate_scale(thresholds)


def test_gpa_is_credit_weighted():
    # (3 × 4.0 + 1 × 2.0) / 4 = 3.5
    assert gpa([(3, "A"), (1, "C")]) == pytest.approx(3.5)


def test_gpa_leaves_out_zero_credit_and_ungraded_courses():
    assert gpa([(3, "B"), (0, "F"), (4, None)]) == pytest.approx(3.0)
    assert gpa([(0, "A")]) is None
    assert gpa([]) is None


def test_gpa_counts_failed_courses():
    assert gpa([(3, "A"), (3, "F")]) == pytest.approx(2.0)
