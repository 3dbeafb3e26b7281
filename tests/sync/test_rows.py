"""Rows as they travel, written on a device: the column-wise conversion gives SQLite exactly what
SQLAlchemy stores for the same values, and refuses a bad value."""

from __future__ import annotations

import re
import sqlite3
import uuid
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, insert

from portal.sync.tables import BY_NAME
from portal.sync.wire import sqlite_rows, to_json

MOMENT = datetime(2026, 11, 30, 22, 41, 7, 123456, tzinfo=UTC)
ON_THE_SECOND = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def _values(table: str) -> list[dict[str, Any]]:
    ids = [uuid.uuid4() for _ in range(4)]
    if table == "marks":
        return [
            {"assessment_id": ids[0], "student_id": ids[1], "points": 71.5, "entered_by_id": None,
             "id": ids[2], "created_at": MOMENT, "updated_at": ON_THE_SECOND},
            {"assessment_id": ids[0], "student_id": ids[3], "points": 3.0, "entered_by_id": ids[1],
             "id": ids[3], "created_at": ON_THE_SECOND, "updated_at": MOMENT},
        ]  # fmt: skip
    if table == "meetings":
        return [
            {"section_id": ids[0], "weekday": 2, "starts_at": time(9, 30),
             "ends_at": time(10, 45, 30), "kind": "lecture", "id": ids[1],
             "created_at": MOMENT, "updated_at": MOMENT, "deleted_at": None},
        ]  # fmt: skip
    if table == "lab_sessions":
        return [
            {"section_id": ids[0], "held_on": date(2026, 2, 28), "starts_at": time(9, 30),
             "ends_at": time(10, 45, 30, 250000), "room": "L1", "id": ids[1],
             "created_at": MOMENT, "updated_at": MOMENT, "deleted_at": None},
            {"section_id": ids[0], "held_on": date(2026, 12, 1), "starts_at": time(14, 0),
             "ends_at": time(15, 0), "room": "L2", "id": ids[2],
             "created_at": MOMENT, "updated_at": ON_THE_SECOND, "deleted_at": MOMENT},
        ]  # fmt: skip
    return [
        {"kind": "superseded", "table_name": "marks", "row_id": ids[0], "field": "points",
         "kept_value": {"points": 3}, "lost_value": None, "detail": "", "author_id": ids[1],
         "device_id": None, "change_id": ids[2], "resolved_at": None, "resolved_by_id": None,
         "resolution": "", "id": ids[3], "created_at": MOMENT, "updated_at": ON_THE_SECOND},
    ]  # fmt: skip


def _as_postgresql_sends(value: Any) -> Any:
    """As a pull reads it from PostgreSQL: UTC moments always with their microseconds."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    return to_json(value)


@pytest.mark.parametrize("table", ["marks", "meetings", "lab_sessions", "sync_conflicts"])
@pytest.mark.parametrize("form", [to_json, _as_postgresql_sends])
def test_rows_reach_sqlite_as_sqlalchemy_binds_them(tmp_path: Path, table: str, form: Any) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'device.db'}")

    @event.listens_for(engine, "connect")
    def _table_alone(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # its parents are not here

    columns = BY_NAME[table].table
    columns.create(engine)
    rows = _values(table)
    with engine.begin() as connection:
        connection.execute(insert(columns), rows)
    stored = sqlite3.connect(tmp_path / "device.db")
    names = list(columns.columns.keys())
    expected = stored.execute(f'SELECT {", ".join(names)} FROM "{table}"').fetchall()  # noqa: S608
    stored.close()
    travelling = [[form(row[name]) for name in names] for row in rows]
    converted = sqlite_rows(columns, names, engine.dialect)(travelling)
    assert converted == expected
    engine.dispose()


@pytest.mark.parametrize(
    ("position", "bad", "words"),
    [
        (4, "not-an-id", "id: 'not-an-id' is not a valid value"),
        (4, 17, "id: 17 is not a valid value"),
        (2, "71", "points: '71' is not a number"),
        (5, "2026-02-30T10:00:00.000000+00:00", "created_at:"),
        (5, "2026-11-30T10:00:60.000000+00:00", "created_at:"),
        (5, "2026-11-30T10:00:00.00000x+00:00", "created_at:"),
        (5, "2026-11-30T10:00:00", "a time without a zone"),
    ],
)
def test_a_bad_value_is_refused_with_its_column(position: int, bad: Any, words: str) -> None:
    from sqlalchemy.dialects import sqlite

    columns = BY_NAME["marks"].table
    names = list(columns.columns.keys())
    good = [to_json(value) for value in _values("marks")[0].values()]
    row = list(good)
    row[position] = bad
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        sqlite_rows(columns, names, sqlite.dialect())([good, row])
    with pytest.raises(ValueError, match="lists of 7 values"):
        sqlite_rows(columns, names, sqlite.dialect())([good[:-1]])
    with pytest.raises(ValueError, match="unknown fields"):
        sqlite_rows(columns, [*names[:-1], "password"], sqlite.dialect())


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("held_on", "2026-02-30"),
        ("held_on", "2026-2-3"),
        ("held_on", "2026-02-3x"),
        ("starts_at", "25:00:00"),
        ("starts_at", "09:3x:00"),
    ],
)
def test_a_date_or_time_that_is_not_one_is_refused_with_its_column(name: str, bad: str) -> None:
    from sqlalchemy.dialects import sqlite

    columns = BY_NAME["lab_sessions"].table
    names = list(columns.columns.keys())
    good, other = ([to_json(value) for value in row.values()] for row in _values("lab_sessions"))
    other[names.index(name)] = bad
    with pytest.raises(ValueError, match=f"{name}: '{bad}' is not a valid value"):
        sqlite_rows(columns, names, sqlite.dialect())([good, other])


_ID = "5b2e8c1f-03a4-4d7e-9f61-2c8d0a7b4e95"


@pytest.mark.parametrize(
    "bad",
    [
        _ID[:9] + "g" + _ID[10:],  # a letter that is no hexadecimal digit
        _ID[:9] + " " + _ID[10:],  # white space where a digit belongs
        _ID[:9] + "\n" + _ID[10:],  # a line break where a digit belongs
        _ID.replace("-", "", 1) + "0",  # a dash missing, the length kept
        _ID[:8] + "0" + _ID[9:],  # a digit where a dash belongs
    ],
)
def test_an_id_that_is_not_one_is_refused_among_good_ones(bad: str) -> None:
    from sqlalchemy.dialects import sqlite

    columns = BY_NAME["marks"].table
    names = list(columns.columns.keys())
    good = [to_json(value) for value in _values("marks")[0].values()]
    rows = [list(good) for _ in range(3)]
    rows[1][names.index("student_id")] = bad
    with pytest.raises(ValueError, match=f"student_id: {re.escape(repr(bad))} is not a valid"):
        sqlite_rows(columns, names, sqlite.dialect())(rows)


@pytest.mark.parametrize("form", [str.upper, lambda text: "{" + text + "}", lambda text: text])
def test_ids_in_any_form_uuid_reads_are_stored_as_sqlalchemy_stores_them(form: Any) -> None:
    from sqlalchemy.dialects import sqlite

    columns = BY_NAME["marks"].table
    names = list(columns.columns.keys())
    good = [to_json(value) for value in _values("marks")[0].values()]
    rows = [list(good) for _ in range(2)]
    rows[0][names.index("student_id")] = form(_ID)
    converted = sqlite_rows(columns, names, sqlite.dialect())(rows)
    assert converted[0][names.index("student_id")] == uuid.UUID(_ID).hex


@pytest.mark.parametrize(
    ("table", "name", "bad", "words"),
    [
        ("lab_sessions", "room", 17, "room: 17 is not text"),
        ("meetings", "weekday", True, "weekday: True is not a whole number"),
        ("meetings", "weekday", "2", "weekday: '2' is not a whole number"),
        ("meetings", "kind", None, None),  # text or nothing: stored as it is
    ],
)
def test_text_and_numbers_pass_as_they_are_and_other_types_are_refused(
    table: str, name: str, bad: Any, words: str | None
) -> None:
    from sqlalchemy.dialects import sqlite

    columns = BY_NAME[table].table
    names = list(columns.columns.keys())
    good = [to_json(value) for value in _values(table)[0].values()]
    other = list(good)
    other[names.index(name)] = bad
    convert = sqlite_rows(columns, names, sqlite.dialect())
    if words is None:
        assert [row[names.index(name)] for row in convert([good, other])] == [
            good[names.index(name)],
            bad,
        ]
    else:
        with pytest.raises(ValueError, match=re.escape(words)):
            convert([good, other])


def test_an_answer_is_the_text_json_would_write(tmp_path: Path) -> None:
    """Answers are encoded by orjson for speed: the text is what json.dumps with json_default
    writes (moments with and without microseconds, dates, times, ids, text json escapes)."""
    import json

    from portal.sync.server import routes
    from portal.sync.wire import json_default
    from tests.conftest import make_app

    values = [
        uuid.uuid4(),
        datetime(2026, 11, 30, 22, 41, 7, tzinfo=UTC),
        datetime(2026, 11, 30, 22, 41, 7, 123456, tzinfo=UTC),
        date(2026, 12, 1),
        time(9, 30),
        time(9, 30, 15, 500),
        3.5,
        7,
        None,
        True,
        'é "quoted" \\ \u2028 \x01',
    ]
    data = {"rows": {"marks": [values, values[::-1]]}, "next": None}
    with make_app(tmp_path).test_request_context():
        answer = routes._json(data)
    compact = json.dumps(data, separators=(",", ":"), default=json_default, ensure_ascii=False)
    assert answer.get_data() == compact.encode()
