"""The reference apps of the start-up benchmarks really start and answer /healthz."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from tests.benchmarks import floors
from tests.benchmarks.bench_desktop import floor_headless_start


@pytest.mark.parametrize("source", [floors.HELLO, floors.ORM], ids=["hello", "orm"])
def test_reference_app_answers_healthz(source, tmp_path):
    assert floor_headless_start(tmp_path, source) > 0  # asserts the 200 itself


def test_the_orm_reference_keeps_its_data_in_an_sqlite_file(tmp_path):
    floor_headless_start(tmp_path, floors.ORM)
    with closing(sqlite3.connect(tmp_path / "floor-orm.db")) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert "note" in tables
