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
