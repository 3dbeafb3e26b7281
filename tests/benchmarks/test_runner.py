"""The benchmark runner's own pieces: discovery, percentiles and the Markdown table."""

from __future__ import annotations

import pytest

from tests.benchmarks.harness import percentile
from tests.benchmarks.run import discover, markdown_table


def test_discovers_bench_modules_by_name():
    assert "foundation" in discover()
    assert discover(["foundation"]) == ["foundation"]
    with pytest.raises(SystemExit, match="no benchmark module for: nothing"):
        discover(["nothing"])


def test_every_bench_module_has_a_run_function():
    import importlib

    for name in discover():
        module = importlib.import_module(f"tests.benchmarks.bench_{name}")
        assert callable(getattr(module, "run", None)), f"bench_{name}.py has no run(context)"


def test_nearest_rank_percentiles():
    samples = [float(n) for n in range(1, 101)]
    assert percentile(samples, 0.50) == 50.0
    assert percentile(samples, 0.95) == 95.0
    assert percentile([7.0], 0.95) == 7.0


def test_markdown_table_columns_in_order_of_first_appearance():
    table = markdown_table([{"Page": "A", "p50 ms": 1.25}, {"Page": "B|C", "Note": "x"}])
    assert table.splitlines() == [
        "| Page | p50 ms | Note |",
        "|---|---|---|",
        "| A | 1.2 |  |",
        "| B\\|C |  | x |",
    ]


# --- Goals: each is reported met or NOT MET, and one not met fails the run ----------------------


class _Benchmark:
    """A benchmark module as the runner sees it: a TITLE and run(context)."""

    def __init__(self, title: str, run) -> None:
        self.TITLE = title
        self.run = run


def _context():
    from tests.benchmarks.run import BenchContext

    return BenchContext(1, [], [])


def _fast(context):
    verdict = context.goal("start", met=True, target="< 1.5 s", measured="0.42 s")
    return [{"measure": "start", "goal": verdict}]


def _slow(context):
    context.goal("ratio", met=False, target="<= 1.3x the floor", measured="3.40x")
    return [{"measure": "ratio"}]


def test_goals_met_pass_and_are_reported():
    from tests.benchmarks.run import run_benchmarks

    sections, failed = run_benchmarks([("fast", _Benchmark("Fast", _fast))], _context())
    report = "\n".join(sections)
    assert failed is False
    assert "| start | met |" in report
    assert "| Fast | start | < 1.5 s | 0.42 s | met |" in report
    assert "1 of 1 goals met." in report


def test_a_goal_not_met_fails_the_run_and_says_so():
    from tests.benchmarks.run import run_benchmarks

    modules = [("fast", _Benchmark("Fast", _fast)), ("slow", _Benchmark("Slow", _slow))]
    sections, failed = run_benchmarks(modules, _context())
    report = "\n".join(sections)
    assert failed is True
    assert "| Slow | ratio | <= 1.3x the floor | 3.40x | NOT MET |" in report
    assert "| Fast | start | < 1.5 s | 0.42 s | met |" in report
    assert "1 of 2 goals met: the run fails." in report


def test_a_page_slower_than_the_latency_goal_is_not_met():
    from tests.benchmarks.run import PAGE_P95_GOAL_MS

    context = _context()
    context.benchmark = "Pages"
    assert context.page_latency_goal("Dashboard", "sqlite", "large", 12.5) == "met"
    assert context.page_latency_goal("Gradebook", "postgresql", "large", PAGE_P95_GOAL_MS) == (
        "NOT MET"
    )
    slow = context.goals[-1]
    assert slow.name == "Gradebook on postgresql, large data: p95"
    assert slow.target == "under 50 ms"
    assert slow.measured.startswith("50.0 ms (load average ")


def test_a_problem_or_a_crash_fails_the_run():
    from tests.benchmarks.run import run_benchmarks

    def crash(context):
        raise RuntimeError("boom")

    def problem(context):
        context.problem("the query count grew")
        return []

    for run in (crash, problem):
        sections, failed = run_benchmarks([("x", _Benchmark("X", run))], _context())
        assert failed is True
        assert "**PROBLEM:**" in "\n".join(sections)


def test_every_goal_a_benchmark_declares_is_reported_through_the_context():
    """A GOAL_* constant in a bench module is checked with context.goal (met / NOT MET), not
    only printed."""
    import importlib
    import inspect

    for name in discover():
        module = importlib.import_module(f"tests.benchmarks.bench_{name}")
        source = inspect.getsource(module)
        if any(line.startswith("GOAL_") for line in source.splitlines()):
            assert "goal(" in source, f"bench_{name}.py declares goals but never reports them"
            assert "MISSED" not in source


def test_a_benchmark_with_a_goal_column_reports_its_verdicts_through_the_context():
    """A module whose table has a goal column records each verdict with context.goal, so that
    the goals table lists it and one not met fails the run: a verdict it spells itself ("not
    met") would be shown in its table and then ignored."""
    import importlib
    import inspect
    import re

    for name in discover():
        module = importlib.import_module(f"tests.benchmarks.bench_{name}")
        source = inspect.getsource(module)
        if re.search(r'"[Gg]oal": ', source):
            assert "goal(" in source, f"bench_{name}.py shows goals but never reports them"
        assert '"not met"' not in source, (
            f"bench_{name}.py spells a verdict itself instead of asking context.goal"
        )
