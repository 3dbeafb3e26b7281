"""How values and rows travel as JSON, and how a device stores pulled rows quickly."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import JSON, Column, Date, Dialect, Table, Time, Uuid

from portal.models import UTCDateTime


def to_json(value: Any) -> Any:
    """A column value as it travels: ids, dates and times as ISO text."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


def from_json(column: Column[Any], value: Any) -> Any:
    """The Python value for `column` from its JSON form; raises ValueError on a bad value."""
    if value is None:
        return None
    kind = column.type
    try:
        if isinstance(kind, Uuid):
            return uuid.UUID(str(value))
        if isinstance(kind, UTCDateTime):
            moment = datetime.fromisoformat(str(value))
            if moment.tzinfo is None:
                raise ValueError("a time without a zone")
            return moment
        if isinstance(kind, Date):
            return date.fromisoformat(str(value))
        if isinstance(kind, Time):
            return time.fromisoformat(str(value))
        if isinstance(kind, JSON):
            return value
        python_type = kind.python_type
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{column.name}: {value!r} is not a valid value ({exc})") from None
    if python_type is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{column.name}: {value!r} is not true or false")
        return value
    if python_type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{column.name}: {value!r} is not a whole number")
        return value
    if python_type is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{column.name}: {value!r} is not a number")
        return float(value)
    if python_type is str:
        if not isinstance(value, str):
            raise ValueError(f"{column.name}: {value!r} is not text")
        return value
    return value


def row_to_json(table: Table, row: Any) -> dict[str, Any]:
    return {column.name: to_json(getattr(row, column.name)) for column in table.columns}


def row_from_json(table: Table, data: dict[str, Any]) -> dict[str, Any]:
    """Column values of `table` from a JSON row; unknown keys are refused."""
    unknown = set(data) - set(table.columns.keys())
    if unknown:
        raise ValueError(f"unknown fields for {table.name}: {', '.join(sorted(unknown))}")
    return {name: from_json(table.columns[name], value) for name, value in data.items()}


def json_default(value: Any) -> Any:
    """For json.dumps: the values a column read from the database holds that JSON has no type
    for travel as `to_json` makes them (ids, dates and times as ISO text)."""
    if isinstance(value, uuid.UUID | datetime | date | time):
        return to_json(value)
    raise TypeError(f"{type(value).__name__} cannot travel as JSON")


# --- Rows as a device stores them -------------------------------------------------------------


def _reader(column: Column[Any]) -> Callable[[Any], Any]:
    """`from_json` for one column, with the checks of its type decided once."""
    kind = column.type
    name = column.name
    if isinstance(kind, Uuid):

        def read_uuid(value: Any) -> Any:
            try:
                return uuid.UUID(value)
            except (TypeError, ValueError, AttributeError):
                raise ValueError(f"{name}: {value!r} is not a valid value (an id)") from None

        return read_uuid
    try:
        python_type = (
            None if isinstance(kind, JSON | UTCDateTime | Date | Time) else kind.python_type
        )
    except NotImplementedError:
        python_type = None
    if python_type in _PLAIN:
        expected, words = python_type, _PLAIN[python_type]

        def read_plain(value: Any) -> Any:
            if type(value) is not expected:  # JSON's own type, as it is: nothing to convert
                raise ValueError(f"{name}: {value!r} is not {words}")
            return value

        return read_plain
    return lambda value: from_json(column, value)


# The column types that travel as JSON's own, and what a value of another type is not.
_PLAIN: dict[type, str] = {str: "text", int: "a whole number"}


# Rows are converted a column at a time: a column whose values all have the usual form (ids
# as Python writes them; UTC moments as "YYYY-MM-DDTHH:MM:SS.ffffff+00:00"; dates; times of
# day on the second) is checked with string operations over the whole column (its values
# joined one per line: fixed widths, fixed characters at fixed places) and turned into what
# SQLAlchemy stores in SQLite (ids as 32 hexadecimal digits; moments as "YYYY-MM-DD
# HH:MM:SS.ffffff"; times of day as "HH:MM:SS.ffffff") at once. Any other column takes the
# long way, value by value (parsed as `from_json` does, then bound as SQLAlchemy binds it).
Values = Sequence[Any]


def _fixed_width(values: Values, width: int) -> str | None:
    """The values one per line, when every one is text of `width` characters without a line
    break (a value that is not text makes the join fail)."""
    count = len(values)
    try:
        joined = "\n".join(values)
    except TypeError:
        return None
    if (
        len(joined) != (width + 1) * count - 1
        or joined.count("\n") != count - 1
        or joined[width :: width + 1] != "\n" * (count - 1)
        or not joined.isascii()
    ):
        return None
    return joined


def _at(joined: str, width: int, count: int, places: dict[int, str]) -> bool:
    """Whether every line of `joined` has these characters at these places."""
    return all(joined[spot :: width + 1] == text * count for spot, text in places.items())


_DASHES = {8: "-", 13: "-", 18: "-", 23: "-"}  # where an id's text has its dashes


def _uuid_column(values: Values) -> list[Any] | None:
    """Ids as Python writes them (lower-case hexadecimal digits, dashes at their places),
    checked with string operations over the whole column: no value by value work."""
    count = len(values)
    joined = _fixed_width(values, 36)
    if joined is None or not _at(joined, 36, count, _DASHES):
        return None
    digits = joined.replace("-", "")
    if len(digits) != 33 * count - 1 or digits != digits.lower():
        return None
    try:  # hexadecimal digits only (fromhex skips the line breaks, and would skip any other
        # white space: the length tells)
        if len(bytes.fromhex(digits)) != 16 * count:
            return None
    except ValueError:
        return None
    return digits.split("\n")


_UTC_PLACES = {4: "-", 7: "-", 10: "T", 13: ":", 16: ":", 19: ".", 26: "+"}
_UTC_PLACES.update({27: "0", 28: "0", 29: ":", 30: "0", 31: "0"})


def _utc_column(values: Values) -> list[Any] | None:
    """UTC moments as "YYYY-MM-DDTHH:MM:SS.ffffff+00:00": the form checked over the whole
    column, the dates and times by parsing each (a 30th of February is refused)."""
    count = len(values)
    joined = _fixed_width(values, 32)
    if joined is None or not _at(joined, 32, count, _UTC_PLACES):
        return None
    try:
        list(map(datetime.fromisoformat, values))  # digits where digits belong, real moments
    except ValueError:
        return None  # the long way says which value is wrong
    return joined.replace("T", " ")[:-6].split("+00:00\n")


def _date_column(values: Values) -> list[Any] | None:
    joined = _fixed_width(values, 10)
    if joined is None or not _at(joined, 10, len(values), {4: "-", 7: "-"}):
        return None
    try:
        list(map(date.fromisoformat, values))  # real dates
    except ValueError:
        return None
    return list(values)  # SQLite keeps a date as this very text


def _time_column(values: Values) -> list[Any] | None:
    """Times of day on the second, "HH:MM:SS" (as Python and PostgreSQL write them then)."""
    joined = _fixed_width(values, 8)
    if joined is None or not _at(joined, 8, len(values), {2: ":", 5: ":"}):
        return None
    try:
        list(map(time.fromisoformat, values))  # real times of day
    except ValueError:
        return None
    # as SQLAlchemy stores a time in SQLite: with its microseconds
    return (joined + "\n").replace("\n", ".000000\n")[:-1].split("\n")


def _typed_column(
    kinds: frozenset[type], bind: Callable[[Any], Any] | None
) -> Callable[[Values], list[Any] | None]:
    def convert(values: Values) -> list[Any] | None:
        if not set(map(type, values)) <= kinds:
            return None
        return list(map(bind, values)) if bind is not None else list(values)

    return convert


def _float_column(values: Values) -> list[Any] | None:
    found = set(map(type, values))
    if found <= {float}:
        return list(values)
    if found <= {float, int}:
        return list(map(float, values))
    return None


def _fast_column(
    column: Column[Any], bind: Callable[[Any], Any] | None
) -> Callable[[Values], list[Any] | None] | None:
    """The whole-column conversion of `column`'s values other than None, or None."""
    kind = column.type
    if isinstance(kind, Uuid):
        return _uuid_column
    if isinstance(kind, UTCDateTime):
        return _utc_column
    if isinstance(kind, Date):
        return _date_column
    if isinstance(kind, Time):
        return _time_column
    if isinstance(kind, JSON):
        return None
    try:
        python_type = kind.python_type
    except NotImplementedError:
        return None
    if python_type is str:
        return _typed_column(frozenset({str}), bind)
    if python_type is int:
        return _typed_column(frozenset({int}), bind)
    if python_type is bool:
        return _typed_column(frozenset({bool}), bind)
    if python_type is float and bind is None:
        return _float_column
    return None


def _as_stored(column: Column[Any], bind: Callable[[Any], Any] | None) -> frozenset[type]:
    """The types of JSON values that SQLite stores as they are for `column` (nothing to
    convert): text, whole numbers and floats for columns of those types that SQLAlchemy binds
    as they are, and true or false (which SQLite stores as 1 and 0, as SQLAlchemy binds them)."""
    kind = column.type
    if isinstance(kind, JSON | Uuid | UTCDateTime | Date | Time):
        return frozenset()
    try:
        python_type = kind.python_type
    except NotImplementedError:
        return frozenset()
    if python_type in (str, int, float) and bind is None or python_type is bool:
        return frozenset({python_type, type(None)})
    return frozenset()


def _column_converter(column: Column[Any], dialect: Dialect) -> Callable[[Values], Values]:
    read = _reader(column)
    bind = column.type.dialect_impl(dialect).bind_processor(dialect)
    if isinstance(column.type, JSON):  # None is bound too (as SQLAlchemy does: JSON null)
        return lambda values: list(map(bind, values)) if bind else list(values)
    if bind is None:
        step = read
    else:

        def step(value: Any) -> Any:
            return bind(read(value))

    fast = _fast_column(column, bind) if dialect.name == "sqlite" else None
    stored = _as_stored(column, bind) if dialect.name == "sqlite" else frozenset()

    def convert(values: Values) -> Values:
        if stored and set(map(type, values)) <= stored:
            return values  # already what SQLite stores: no work
        present = [value for value in values if value is not None] if None in values else values
        done = fast(present) if fast is not None and present else None
        if done is None:
            done = list(map(step, present))
        if present is values:
            return done
        given = iter(done)
        return [None if value is None else next(given) for value in values]

    return convert


def sqlite_rows(
    table: Table, names: Sequence[str], dialect: Dialect
) -> Callable[[Sequence[Any]], list[tuple[Any, ...]]]:
    """A function turning rows as they travel (lists of values in the order of `names`) into
    the parameters of an SQLite statement over those columns, as SQLAlchemy would bind them
    (the same checks as `row_from_json`; raises ValueError on a bad row)."""
    unknown = [name for name in names if name not in table.columns]
    if unknown:
        raise ValueError(f"unknown fields for {table.name}: {', '.join(sorted(unknown))}")
    converters = [_column_converter(table.columns[name], dialect) for name in names]
    width = len(converters)

    def convert(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
        if not rows:
            return []
        if not set(map(type, rows)) <= {list, tuple} or set(map(len, rows)) != {width}:
            raise ValueError(f"rows of {table.name} must be lists of {width} values")
        columns = zip(*rows, strict=True)
        converted = [each(values) for each, values in zip(converters, columns, strict=True)]
        return list(zip(*converted, strict=True))

    return convert
