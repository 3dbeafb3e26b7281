"""Bulk CSV import of users, courses, sections and registrations.

Two steps, both over the same checks:

* `check_file` (the dry run) reads and validates every row and changes nothing; registrations
  are also tried against the registration rules inside a savepoint that is rolled back.
* `import_file` checks the file again (the database may have changed since the dry run) and
  then writes every row; it reports success only when every row went in. The caller commits
  when `report.ok`, otherwise rolls back, so an import is all or nothing.

Problems are reported per row: the line number in the file, the column, and what is wrong.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from portal.accounts import services as accounts
from portal.accounts.services import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, hash_password
from portal.admin import services as catalogue
from portal.audit.services import record
from portal.errors import RegistrationError, ValidationError
from portal.models import ROLES, Course, Registration, Section, Term, User
from portal.registration.services import register

MAX_ROWS = 100_000
MAX_PROBLEMS_KEPT = 5_000  # a report lists this many; the counts cover every problem
LOOKUP_CHUNK = 500  # values per IN (...) when comparing the file against the database
MAX_CELL_LENGTH = 5_000
HASH_WORKERS = max(1, min(4, os.cpu_count() or 1))

Progress = Callable[[str, int, int], None]  # (step, done, total)


def _no_progress(step: str, done: int, total: int) -> None:
    return None


# --- What each kind of file holds ----------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    required: bool
    help: str
    example: str = ""


@dataclass(frozen=True)
class ImportKind:
    name: str
    label: str
    columns: tuple[Column, ...]
    # At least one column of each group must be present (e.g. username or student_number).
    one_of: tuple[tuple[str, ...], ...] = ()

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


KINDS: dict[str, ImportKind] = {
    "users": ImportKind(
        "users",
        _l("Users"),
        (
            Column(
                "username",
                True,
                _l("2–64 lower-case letters, digits, '.', '_' or '-'; unique"),
                "asmith",
            ),
            Column("full_name", True, _l("the person's name"), "Alice Smith"),
            Column("role", True, _l("student, instructor, lab_staff or admin"), "student"),
            Column("email", False, _l("an e-mail address"), "asmith@campus.example"),
            Column(
                "student_number",
                False,
                _l("required for students, unique; empty for staff"),
                "S10001",
            ),
            Column(
                "password",
                False,
                _l(
                    "at least %(minimum)s characters; empty: a one-time password is "
                    "generated and can be downloaded once after the import",
                    minimum=MIN_PASSWORD_LENGTH,
                ),
                "",
            ),
        ),
    ),
    "courses": ImportKind(
        "courses",
        _l("Courses"),
        (
            Column("code", True, _l("1–20 capital letters, digits or '-'; unique"), "CS101"),
            Column("title", True, _l("at most 200 characters"), "Introduction to Programming"),
            Column("credits", True, _l("a whole number from 0 to 30"), "4"),
            Column("department", True, _l("at most 100 characters"), "Computer Science"),
            Column("description", False, _l("free text"), ""),
        ),
    ),
    "sections": ImportKind(
        "sections",
        _l("Sections"),
        (
            Column("term_code", True, _l("an existing term"), "2026-FA"),
            Column("course_code", True, _l("an existing course"), "CS101"),
            Column(
                "number", True, _l("1–10 letters, digits or '-'; unique per course and term"), "001"
            ),
            Column("capacity", True, _l("seats, a whole number"), "30"),
            Column("waitlist_capacity", False, _l("waitlist places, default 0"), "5"),
            Column("room", False, _l("at most 50 characters"), "B-101"),
            Column("instructor", False, _l("username of an instructor"), "jdoe"),
            Column("lab_staff", False, _l("username of a lab staff member"), "lab1"),
        ),
    ),
    "registrations": ImportKind(
        "registrations",
        _l("Registrations"),
        (
            Column(
                "username", False, _l("the student's username (or give student_number)"), "asmith"
            ),
            Column(
                "student_number", False, _l("the student's number (or give username)"), "S10001"
            ),
            Column("term_code", True, _l("the section's term"), "2026-FA"),
            Column("course_code", True, _l("the section's course"), "CS101"),
            Column("section_number", True, _l("the section's number"), "001"),
        ),
        one_of=(("username", "student_number"),),
    ),
}


# --- The report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    line: int  # 0: the file as a whole
    column: str
    message: str
    severity: str = "error"  # "error" blocks the import; "warning" does not


@dataclass
class ImportReport:
    kind: str
    encoding: str = ""
    delimiter: str = ","
    notes: list[str] = field(default_factory=list)
    rows: int = 0
    problems: list[Problem] = field(default_factory=list)
    error_count: int = 0
    warning_count: int = 0
    imported: int = 0
    summary: str = ""
    # Generated passwords (username, password): handed to the caller once, never stored here.
    one_time_passwords: list[tuple[str, str]] = field(default_factory=list, repr=False)
    error_lines: set[int] = field(default_factory=set, repr=False)  # lines with an error
    # Per column: [number of errors, line and message of the first one] (for large files).
    by_column: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def add(self, line: int, column: str, message: str, severity: str = "error") -> None:
        if severity == "error":
            self.error_count += 1
            self.error_lines.add(line)
            tally = self.by_column.setdefault(column or "(whole line)", [0, line, message])
            tally[0] += 1
        else:
            self.warning_count += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(Problem(line, column, message, severity))

    @property
    def more_problems(self) -> int:
        return self.error_count + self.warning_count - len(self.problems)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("one_time_passwords")
        data.pop("error_lines")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportReport:
        values = dict(data)
        values["problems"] = [Problem(**p) for p in values.get("problems", [])]
        values.setdefault("by_column", {})
        return cls(**values)


class FileRefused(ValidationError):
    """The file cannot be read at all (empty, binary, unreadable header)."""


@dataclass
class Row:
    line: int
    values: dict[str, str]  # cleaned by the checks (codes upper-case, usernames lower-case)
    typed: dict[str, str] = field(default_factory=dict)  # as in the file, for messages

    def __post_init__(self) -> None:
        if not self.typed:
            self.typed = dict(self.values)

    def __getitem__(self, name: str) -> str:
        return self.values.get(name, "")

    def as_typed(self, name: str) -> str:
        """The value as the file has it: what a message echoes back to the person."""
        return self.typed.get(name, self.values.get(name, ""))


# --- Reading the file ----------------------------------------------------------------------------


def decode(data: bytes) -> tuple[str, str, list[str]]:
    """The text of an upload, the encoding used, and notes for the admin."""
    if not data.strip():
        raise FileRefused(_("The file is empty."))
    if data.startswith(b"PK\x03\x04") or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise FileRefused(
            _(
                "This is a spreadsheet workbook, not a CSV file. In Excel or LibreOffice choose "
                "'Save as' › 'CSV UTF-8 (comma delimited)' and upload that file."
            )
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "UTF-16", ["The file is UTF-16 text; it was converted."]
        except UnicodeDecodeError:
            raise FileRefused(
                _("The file says it is UTF-16 but is not readable as such.")
            ) from None
    if b"\x00" in data[:4096]:
        raise FileRefused(_("The file contains binary data; it is not a CSV text file."))
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "UTF-8 (with byte-order mark)", []
        except UnicodeDecodeError as error:
            line = data[: error.start + 3].count(b"\n") + 1
            raise FileRefused(
                _(
                    "The file starts like UTF-8 but line %(line)s is not valid UTF-8. Save it "
                    "again as 'CSV UTF-8'.",
                    line=line,
                )
            ) from None
    try:
        return data.decode("utf-8"), "UTF-8", []
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
    try:
        text, encoding = data.decode("cp1252"), "Windows-1252 (Latin-1)"
    except UnicodeDecodeError:
        text, encoding = data.decode("latin-1"), "ISO-8859-1 (Latin-1)"
    note = (
        f"The file is not UTF-8 (the first non-UTF-8 byte is on line {line}), so it was read as "
        f"{encoding}. Check that accented names below look right; if they do not, save the file "
        "as 'CSV UTF-8' and upload it again."
    )
    return text, encoding, [note]


def _sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _normalise_header(name: str) -> str:
    return name.strip().strip("\ufeff").strip().lower().replace(" ", "_").replace("-", "_")


def _check_header(kind: ImportKind, header: list[str], report: ImportReport) -> bool:
    problems_before = report.error_count
    seen: dict[str, int] = {}
    for index, name in enumerate(header, start=1):
        if not name:
            report.add(
                1, f"column {index}", _("Column %(index)s of the header has no name.", index=index)
            )
        elif name in seen:
            report.add(
                1,
                name,
                _(
                    "The column %(name)s appears twice (columns %(first)s and %(second)s).",
                    name=repr(name),
                    first=seen[name],
                    second=index,
                ),
            )
        else:
            seen[name] = index
    known = kind.names
    for name in seen:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            report.add(
                1,
                name,
                _(
                    "Unknown column %(name)s.%(hint)s The columns of a %(kind)s file are: "
                    "%(known)s.",
                    name=repr(name),
                    hint=hint,
                    kind=str(kind.label).lower(),
                    known=", ".join(known),
                ),
            )
    missing = [name for name in kind.required if name not in seen]
    if missing:
        report.add(
            1,
            ", ".join(missing),
            ngettext(
                "Missing required column: %(columns)s.",
                "Missing required columns: %(columns)s.",
                len(missing),
                columns=", ".join(missing),
            ),
        )
    for group in kind.one_of:
        if not any(name in seen for name in group):
            report.add(
                1,
                " or ".join(group),
                _("The file needs a %(columns)s column.", columns=" or a ".join(group)),
            )
    return report.error_count == problems_before


def read_rows(text: str, kind: ImportKind, report: ImportReport, progress: Progress) -> list[Row]:
    """Every data row with its line number; structural problems go in the report."""
    first_line = text.split("\n", 1)[0]
    report.delimiter = _sniff_delimiter(first_line)
    if report.delimiter != ",":
        shown = {"\t": "tabs", ";": "semicolons"}[report.delimiter]
        report.notes.append(_("Columns are separated by %(shown)s.", shown=shown))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=report.delimiter)
    try:
        header_cells = next(reader)
    except (StopIteration, csv.Error) as error:
        raise FileRefused(_("The header line cannot be read: %(error)s", error=error)) from None
    header = [_normalise_header(cell) for cell in header_cells]
    if not any(header):
        raise FileRefused(_("The first line must be the header (the column names); it is empty."))
    if not _check_header(kind, header, report):
        return []
    rows: list[Row] = []
    blank = 0
    line = reader.line_num + 1
    try:
        for cells in reader:
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                blank += 1
                continue
            if len(rows) >= MAX_ROWS:
                report.add(
                    0,
                    "",
                    _(
                        "The file has more than %(limit)s rows. Split it into files of at most "
                        "%(limit)s rows and import them one after the other.",
                        limit=format(MAX_ROWS, ","),
                    ),
                )
                return []
            if len(cells) != len(header):
                hint = (
                    " (a value that contains the separator must be in double quotes)"
                    if len(cells) > len(header)
                    else ""
                )
                report.add(
                    start,
                    "",
                    _(
                        "This line has %(cells)s values but the header has %(header)s "
                        "columns%(hint)s.",
                        cells=len(cells),
                        header=len(header),
                        hint=hint,
                    ),
                )
                continue
            rows.append(
                Row(start, {name: cell.strip() for name, cell in zip(header, cells, strict=True)})
            )
            if len(rows) % 5_000 == 0:
                progress(_("Reading the file"), len(rows), 0)
    except csv.Error as error:
        report.add(
            line,
            "",
            _(
                "This line cannot be read as CSV (%(error)s); nothing after it was read.",
                error=error,
            ),
        )
    if blank:
        report.notes.append(
            ngettext("%(num)d empty line was skipped.", "%(num)d empty lines were skipped.", blank)
        )
    report.rows = len(rows)
    if not rows and report.ok:
        report.add(0, "", _("The file has a header but no data rows."))
    return rows


def _chunks(values: Iterable[Any], size: int = LOOKUP_CHUNK) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _whole_number(
    row: Row, column: str, report: ImportReport, default: int | None = None
) -> int | None:
    text = row[column]
    if not text:
        if default is None:
            report.add(row.line, column, _("%(column)s is required.", column=column))
        return default
    try:
        return int(text)
    except ValueError:
        report.add(row.line, column, _("%(text)s is not a whole number.", text=repr(text)))
        return None


def _required(row: Row, columns: Iterable[str], report: ImportReport) -> bool:
    ok = True
    for column in columns:
        if not row[column]:
            report.add(row.line, column, _("%(column)s is required.", column=column))
            ok = False
        elif len(row[column]) > MAX_CELL_LENGTH:
            report.add(
                row.line,
                column,
                _(
                    "%(column)s is longer than %(limit)s characters.",
                    column=column,
                    limit=format(MAX_CELL_LENGTH, ","),
                ),
            )
            ok = False
    return ok


def _normalise(rows: list[Row], *, upper: tuple[str, ...], lower: tuple[str, ...]) -> None:
    """Codes are compared in capitals and usernames in lower case (`as_typed` keeps the file's)."""
    for row in rows:
        for column in upper:
            row.values[column] = row[column].upper()
        for column in lower:
            row.values[column] = row[column].lower()


def _checking(rows: list[Row], progress: Progress, every: int = 5_000) -> Iterator[Row]:
    """The rows, one by one, telling `progress` how far the checks are every `every` rows."""
    for index, row in enumerate(rows, start=1):
        yield row
        if index % every == 0:
            progress(_("Checking rows"), index, len(rows))


def _writing(
    db: Session, rows: list[Row], progress: Progress, step: str, every: int = 1_000
) -> Iterator[Row]:
    """The rows, one by one, flushing what was added for them every `every` rows and at the
    end, and telling `progress` how far `step` is."""
    for index, row in enumerate(rows, start=1):
        yield row
        if index % every == 0:
            db.flush()
            progress(step, index, len(rows))
    db.flush()


class _Duplicates:
    """Remembers the first line of each key; exact repeats get their own message (once)."""

    def __init__(self, report: ImportReport, repeats: set[int] | None = None) -> None:
        self.report = report
        self.first: dict[Any, Row] = {}
        self.repeats = repeats if repeats is not None else set()  # shared between keys

    def seen(self, row: Row, key: Any, column: str, what: str) -> bool:
        earlier = self.first.get(key)
        if earlier is None:
            self.first[key] = row
            return False
        if earlier.values == row.values:
            if row.line not in self.repeats:
                self.repeats.add(row.line)
                self.report.add(
                    row.line, "", _("This line repeats line %(line)s exactly.", line=earlier.line)
                )
        else:
            self.report.add(
                row.line,
                column,
                _("Duplicate %(what)s: also on line %(line)s.", what=what, line=earlier.line),
            )
        return True


# --- Checks per kind -----------------------------------------------------------------------------


@dataclass
class _Checked:
    """What the checks found in the database, handed on to the import step."""

    rows: list[Row]
    users: dict[str, User] = field(default_factory=dict)
    students_by_number: dict[str, User] = field(default_factory=dict)
    terms: dict[str, Term] = field(default_factory=dict)
    courses: dict[str, Course] = field(default_factory=dict)
    sections: dict[tuple[str, str, str], Section] = field(default_factory=dict)


def _users_by_username(db: Session, usernames: Iterable[str]) -> dict[str, User]:
    found: dict[str, User] = {}
    for batch in _chunks(sorted(set(usernames))):
        found.update(
            {u.username: u for u in db.scalars(select(User).where(User.username.in_(batch)))}
        )
    return found


def _users_by_student_number(db: Session, numbers: Iterable[str]) -> dict[str, User]:
    found: dict[str, User] = {}
    for batch in _chunks(sorted(set(numbers))):
        for user in db.scalars(select(User).where(User.student_number.in_(batch))):
            found[user.student_number or ""] = user
    return found


def _courses_by_code(db: Session, codes: Iterable[str]) -> dict[str, Course]:
    found: dict[str, Course] = {}
    for batch in _chunks(sorted(set(codes))):
        found.update({c.code: c for c in db.scalars(select(Course).where(Course.code.in_(batch)))})
    return found


def _all_terms(db: Session) -> dict[str, Term]:
    return {t.code: t for t in db.scalars(select(Term))}


def _user_details(row: Row) -> accounts.UserDetails:
    return accounts.UserDetails(
        username=row.as_typed("username"),
        full_name=row["full_name"],
        role=row["role"],
        email=row["email"],
        student_number=row["student_number"],
    )


def check_users(db: Session, rows: list[Row], report: ImportReport, progress: Progress) -> _Checked:
    usernames = _Duplicates(report)
    numbers = _Duplicates(report, usernames.repeats)
    required = ("username", "full_name", "role")
    for row in _checking(rows, progress):
        row.values["username"] = row["username"].lower()
        role = row["role"].lower().replace(" ", "_").replace("-", "_")
        row.values["role"] = role
        _required(row, required, report)
        number = row["student_number"]
        if number and role in ROLES and role != "student":
            report.add(
                row.line,
                "student_number",
                _("Only students have student numbers; it is ignored for a %(role)s.", role=role),
                "warning",
            )
            row.values["student_number"] = ""
        values, errors = accounts.user_fields(_user_details(row))
        for column, message in errors.items():
            if row[column] or column not in required:  # an empty required cell: said above
                report.add(row.line, column, message)
        if "username" not in errors:
            usernames.seen(row, values["username"], "username", f"username {values['username']}")
        if values["student_number"] and "student_number" not in errors:
            numbers.seen(row, number, "student_number", f"student number {number}")
        password = row["password"]
        if password and not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
            report.add(
                row.line,
                "password",
                _(
                    "Passwords need at least %(minimum)s characters (this one has %(length)s).",
                    minimum=MIN_PASSWORD_LENGTH,
                    length=len(password),
                ),
            )
    progress(_("Comparing with existing accounts"), len(rows), len(rows))
    existing = _users_by_username(db, usernames.first)
    for username, user in existing.items():
        row = usernames.first[username]
        report.add(
            row.line,
            "username",
            _("The user %(username)s already exists.", username=username)
            if user.active
            else _("The user %(username)s already exists (deactivated).", username=username),
        )
    taken = _users_by_student_number(db, numbers.first)
    for number, user in taken.items():
        row = numbers.first[number]
        report.add(
            row.line,
            "student_number",
            _(
                "Student number %(number)s already belongs to %(username)s.",
                number=number,
                username=user.username,
            ),
        )
    return _Checked(rows)


def check_courses(
    db: Session, rows: list[Row], report: ImportReport, progress: Progress
) -> _Checked:
    codes = _Duplicates(report)
    for row in _checking(rows, progress):
        _required(row, ("code", "title", "credits", "department"), report)
        credits = _whole_number(row, "credits", report, default=0 if not row["credits"] else None)
        details = catalogue.CourseDetails(
            code=row["code"],
            title=row["title"],
            credits=credits if credits is not None else 0,
            department=row["department"],
            description=row["description"],
        )
        values, errors = catalogue.course_fields(details)
        for column, message in errors.items():
            if row[column] and not (column == "credits" and credits is None):
                report.add(row.line, column, message)
        row.values["code"] = values["code"]
        if "code" not in errors:
            codes.seen(row, values["code"], "code", f"course code {values['code']}")
    progress(_("Comparing with existing courses"), len(rows), len(rows))
    for code, course in _courses_by_code(db, codes.first).items():
        report.add(codes.first[code].line, "code", catalogue.course_code_taken(course))
    return _Checked(rows)


def check_sections(
    db: Session, rows: list[Row], report: ImportReport, progress: Progress
) -> _Checked:
    checked = _Checked(rows, terms=_all_terms(db))
    _normalise(rows, upper=("term_code", "course_code"), lower=("instructor", "lab_staff"))
    checked.courses = _courses_by_code(db, (r["course_code"] for r in rows if r["course_code"]))
    checked.users = _users_by_username(
        db, [r[c] for r in rows for c in ("instructor", "lab_staff") if r[c]]
    )
    keys = _Duplicates(report)
    wanted: dict[tuple[str, str, str], Row] = {}
    for row in _checking(rows, progress):
        _required(row, ("term_code", "course_code", "number", "capacity"), report)
        term = checked.terms.get(row["term_code"])
        if row["term_code"] and term is None:
            report.add(
                row.line,
                "term_code",
                _("There is no term %(code)s.", code=repr(row.as_typed("term_code"))),
            )
        elif term is not None and term.is_deleted:
            report.add(row.line, "term_code", _("The term %(code)s is archived.", code=term.code))
        course = checked.courses.get(row["course_code"])
        if row["course_code"] and course is None:
            report.add(
                row.line,
                "course_code",
                _("There is no course %(code)s.", code=repr(row.as_typed("course_code"))),
            )
        elif course is not None and course.is_deleted:
            report.add(
                row.line, "course_code", _("The course %(code)s is archived.", code=course.code)
            )
        capacity = _whole_number(
            row, "capacity", report, default=0 if not row["capacity"] else None
        )
        waitlist = _whole_number(row, "waitlist_capacity", report, default=0)
        details = catalogue.SectionDetails(
            term_code=row["term_code"],
            course_code=row["course_code"],
            number=row["number"],
            capacity=capacity or 0,
            waitlist_capacity=waitlist or 0,
            room=row["room"],
        )
        for column, message in catalogue.section_fields(details).items():
            if row[column]:
                report.add(row.line, column, message)
        for column, role in (("instructor", "instructor"), ("lab_staff", "lab_staff")):
            if row[column]:
                problem = catalogue.staff_problem(checked.users.get(row[column]), row[column], role)
                if problem:
                    report.add(row.line, column, problem)
        key = (row["term_code"], row["course_code"], row["number"])
        if all(key) and not keys.seen(row, key, "number", f"section {key[1]}-{key[2]} in {key[0]}"):
            wanted[key] = row
    progress(_("Comparing with existing sections"), len(rows), len(rows))
    for key, section in _existing_sections(db, checked, wanted).items():
        row = wanted[key]
        report.add(
            row.line,
            "number",
            catalogue.section_number_taken(
                section.course, section.term, section.number, section.is_deleted
            ),
        )
    return checked


def _existing_sections(
    db: Session, checked: _Checked, keys: Iterable[tuple[str, str, str]]
) -> dict[tuple[str, str, str], Section]:
    """The sections of the database named by (term code, course code, number) keys."""
    ids: dict[tuple[Any, Any, str], tuple[str, str, str]] = {}
    for term_code, course_code, number in keys:
        term, course = checked.terms.get(term_code), checked.courses.get(course_code)
        if term is not None and course is not None:
            ids[(term.id, course.id, number)] = (term_code, course_code, number)
    found: dict[tuple[str, str, str], Section] = {}
    for batch in _chunks(ids):
        for section in db.scalars(
            select(Section).where(
                tuple_(Section.term_id, Section.course_id, Section.number).in_(batch)
            )
        ):
            found[ids[(section.term_id, section.course_id, section.number)]] = section
    return found


def check_registrations(
    db: Session, rows: list[Row], report: ImportReport, progress: Progress
) -> _Checked:
    checked = _Checked(rows, terms=_all_terms(db))
    _normalise(rows, upper=("term_code", "course_code"), lower=("username",))
    checked.users = _users_by_username(db, (r["username"] for r in rows if r["username"]))
    checked.students_by_number = _users_by_student_number(
        db, (r["student_number"] for r in rows if r["student_number"])
    )
    checked.courses = _courses_by_code(db, (r["course_code"] for r in rows if r["course_code"]))
    keys = {
        (r["term_code"], r["course_code"], r["section_number"])
        for r in rows
        if r["term_code"] and r["course_code"] and r["section_number"]
    }
    checked.sections = _existing_sections(db, checked, keys)
    pairs = _Duplicates(report)
    wanted: dict[tuple[Any, Any], Row] = {}
    for row in _checking(rows, progress):
        _required(row, ("term_code", "course_code", "section_number"), report)
        student = _student_of(row, checked, report)
        key = (row["term_code"], row["course_code"], row["section_number"])
        section = checked.sections.get(key)
        if all(key) and section is None:
            if key[0] not in checked.terms:
                report.add(
                    row.line,
                    "term_code",
                    _("There is no term %(code)s.", code=repr(row.as_typed("term_code"))),
                )
            elif key[1] not in checked.courses:
                report.add(
                    row.line,
                    "course_code",
                    _("There is no course %(code)s.", code=repr(row.as_typed("course_code"))),
                )
            else:
                report.add(
                    row.line,
                    "section_number",
                    _(
                        "%(course)s has no section %(number)s in %(term)s.",
                        course=key[1],
                        number=repr(key[2]),
                        term=key[0],
                    ),
                )
        elif section is not None and section.is_deleted:
            report.add(
                row.line,
                "section_number",
                _(
                    "%(course)s-%(number)s (%(term)s) is archived.",
                    course=key[1],
                    number=key[2],
                    term=key[0],
                ),
            )
        if student is not None and section is not None:
            pair = (student.id, section.id)
            if not pairs.seen(
                row, pair, "", f"registration of {student.username} in {key[1]}-{key[2]}"
            ):
                wanted[pair] = row
    progress(_("Comparing with existing registrations"), len(rows), len(rows))
    for batch in _chunks(wanted):
        for student_id, section_id, status in db.execute(
            select(Registration.student_id, Registration.section_id, Registration.status).where(
                tuple_(Registration.student_id, Registration.section_id).in_(batch),
                Registration.status.in_(("enrolled", "waitlisted")),
            )
        ):
            row = wanted[(student_id, section_id)]
            report.add(
                row.line,
                "",
                (
                    _("The student is already enrolled in this section.")
                    if status == "enrolled"
                    else _("The student is already waitlisted in this section.")
                ),
            )
    return checked


def _student_of(row: Row, checked: _Checked, report: ImportReport) -> User | None:
    by_name = checked.users.get(row["username"]) if row["username"] else None
    by_number = (
        checked.students_by_number.get(row["student_number"]) if row["student_number"] else None
    )
    if not row["username"] and not row["student_number"]:
        report.add(row.line, "username", _("Give the student's username or student number."))
        return None
    if row["username"] and by_name is None:
        report.add(
            row.line,
            "username",
            _("There is no user %(username)s.", username=repr(row.as_typed("username"))),
        )
        return None
    if row["student_number"] and by_number is None:
        report.add(
            row.line,
            "student_number",
            _(
                "No student has the number %(student_number)s.",
                student_number=repr(row["student_number"]),
            ),
        )
        return None
    if by_name is not None and by_number is not None and by_name is not by_number:
        report.add(
            row.line,
            "student_number",
            _(
                "Student number %(student_number)s belongs to %(owner)s, not %(username)s.",
                student_number=row["student_number"],
                owner=by_number.username,
                username=row["username"],
            ),
        )
        return None
    student = by_name or by_number
    assert student is not None
    if student.role != "student":
        report.add(
            row.line, "username", _("%(username)s is not a student.", username=student.username)
        )
        return None
    if not student.is_active:
        report.add(
            row.line,
            "username",
            _("%(username)s's account is deactivated.", username=student.username),
        )
        return None
    return student


CHECKS: dict[str, Callable[[Session, list[Row], ImportReport, Progress], _Checked]] = {
    "users": check_users,
    "courses": check_courses,
    "sections": check_sections,
    "registrations": check_registrations,
}


# --- Writing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Made:
    """When the rows are written, and by whom (each registration is audited as theirs)."""

    now: datetime
    actor: User | None


# One-time passwords are read off a download and typed: letters and digits only, none that look
# alike (0/O, 1/l/I), so that none begins with a character a spreadsheet takes for a formula
# (the export then shows it with a leading apostrophe that is not part of it).
ONE_TIME_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


def one_time_password(length: int = 12) -> str:
    return "".join(secrets.choice(ONE_TIME_ALPHABET) for _ in range(length))


def _write_users(
    db: Session, checked: _Checked, report: ImportReport, progress: Progress, made: _Made
) -> None:
    rows = checked.rows
    passwords: list[str] = []
    one_time: set[str] = set()
    for row in rows:
        if row["password"]:
            passwords.append(row["password"])
        else:
            one_time.add(row["username"])
            generated = one_time_password()
            passwords.append(generated)
            report.one_time_passwords.append((row["username"], generated))
    # Hashing is deliberately slow (argon2); it needs no database, so it runs on every core.
    hashes: list[str] = []
    with ThreadPoolExecutor(max_workers=HASH_WORKERS) as pool:
        for index, hashed in enumerate(pool.map(hash_password, passwords), start=1):
            hashes.append(hashed)
            if index % 20 == 0 or index == len(rows):
                progress(_("Hashing passwords"), index, len(rows))
    for index, (row, hashed) in enumerate(zip(rows, hashes, strict=True), start=1):
        values, _problems = accounts.user_fields(_user_details(row))
        db.add(
            accounts.new_account(
                values,
                password_hash=hashed,
                must_change_password=row["username"] in one_time,
            )
        )
        if index % 1_000 == 0:
            db.flush()
            progress(_("Writing accounts"), index, len(rows))
    db.flush()
    report.imported = len(rows)


def _write_courses(
    db: Session, checked: _Checked, report: ImportReport, progress: Progress, made: _Made
) -> None:
    for row in _writing(db, checked.rows, progress, "Writing courses"):
        values, _ = catalogue.course_fields(
            catalogue.CourseDetails(
                row["code"],
                row["title"],
                int(row["credits"]),
                row["department"],
                row["description"],
            )
        )
        db.add(Course(**values))
    report.imported = len(checked.rows)


def _write_sections(
    db: Session, checked: _Checked, report: ImportReport, progress: Progress, made: _Made
) -> None:
    for row in _writing(db, checked.rows, progress, "Writing sections"):
        instructor = checked.users.get(row["instructor"])
        lab_staff = checked.users.get(row["lab_staff"])
        db.add(
            Section(
                term_id=checked.terms[row["term_code"]].id,
                course_id=checked.courses[row["course_code"]].id,
                number=row["number"],
                capacity=int(row["capacity"]),
                waitlist_capacity=int(row["waitlist_capacity"] or 0),
                room=row["room"],
                instructor_id=instructor.id if instructor else None,
                lab_staff_id=lab_staff.id if lab_staff else None,
            )
        )
    report.imported = len(checked.rows)


def _write_registrations(
    db: Session, checked: _Checked, report: ImportReport, progress: Progress, made: _Made
) -> None:
    """Each row through the registration rules, exactly as a student's click on the web (each
    audited as the administrator's)."""
    waitlisted = 0
    for index, row in enumerate(checked.rows, start=1):
        student = (
            checked.users.get(row["username"]) or checked.students_by_number[row["student_number"]]
        )
        section = checked.sections[(row["term_code"], row["course_code"], row["section_number"])]
        try:
            registration = register(
                db,
                student,
                section,
                now=made.now,
                actor=made.actor,
                reason="Imported from a CSV file.",
            )
        except RegistrationError as error:
            report.add(row.line, "", f"{student.username}: {error}")
            continue
        if registration.status == "waitlisted":
            waitlisted += 1
            report.add(
                row.line,
                "section_number",
                _(
                    "%(label)s is full: %(username)s goes on the waitlist (position "
                    "%(waitlist_position)s).",
                    label=section.label,
                    username=student.username,
                    waitlist_position=registration.waitlist_position,
                ),
                "warning",
            )
        if index % 100 == 0:
            progress(_("Registering students"), index, len(checked.rows))
    report.imported = len(checked.rows)
    if waitlisted:
        report.notes.append(
            _(
                "%(waitlisted)s of them are waitlisted because the section is full.",
                waitlisted=waitlisted,
            )
        )


WRITERS: dict[str, Callable[[Session, _Checked, ImportReport, Progress, _Made], None]] = {
    "users": _write_users,
    "courses": _write_courses,
    "sections": _write_sections,
    "registrations": _write_registrations,
}


# --- The two steps -------------------------------------------------------------------------------


def _kind(name: str) -> ImportKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValidationError(_("Unknown kind of import %(name)s.", name=repr(name))) from None


def _lookups(checked: _Checked) -> dict[str, Any]:
    return {
        "users": checked.users,
        "students_by_number": checked.students_by_number,
        "terms": checked.terms,
        "courses": checked.courses,
        "sections": checked.sections,
    }


def _read_and_check(
    db: Session, kind: ImportKind, data: bytes, progress: Progress
) -> tuple[ImportReport, _Checked | None]:
    report = ImportReport(kind=kind.name)
    try:
        text, report.encoding, report.notes = decode(data)
        rows = read_rows(text, kind, report, progress)
    except FileRefused as error:
        report.add(0, "", str(error))
        return report, None
    if not report.ok:
        return report, None
    checked = CHECKS[kind.name](db, rows, report, progress)
    return report, checked


def check_file(
    db: Session, kind_name: str, data: bytes, *, now: datetime, progress: Progress = _no_progress
) -> ImportReport:
    """The dry run: every problem of the file, and nothing written.

    Registrations are tried against the registration rules (seats, clashes, credit limits) in a
    savepoint that is always rolled back, so the report shows what the import would meet.
    """
    kind = _kind(kind_name)
    report, checked = _read_and_check(db, kind, data, progress)
    if checked is not None and kind.name == "registrations":
        # Rows that passed their own checks are tried too, so one report shows every problem.
        clean = [row for row in checked.rows if row.line not in report.error_lines]
        savepoint = db.begin_nested()
        try:
            rows = _Checked(clean, **_lookups(checked))
            _write_registrations(db, rows, report, progress, _Made(now, None))  # rolled back
        finally:
            savepoint.rollback()
        report.imported = 0
    report.problems.sort(key=lambda problem: problem.line)  # the rules' own checks come last
    total = report.rows
    report.summary = (
        ngettext(
            "%(count)s row can be imported.",
            "%(count)s rows can be imported.",
            total,
            count=format(total, ","),
        )
        if report.ok
        else _problem_summary(report)
    )
    progress(_("Writing the report"), total, total)
    return report


def import_file(
    db: Session,
    kind_name: str,
    data: bytes,
    *,
    actor: User | None,
    now: datetime,
    source: str = "",
    progress: Progress = _no_progress,
) -> ImportReport:
    """Check the file again and write every row. Commit only when `report.ok`; otherwise roll
    back: a single refused row means that nothing of the file is imported."""
    kind = _kind(kind_name)
    report, checked = _read_and_check(db, kind, data, progress)
    if checked is None or not report.ok:
        report.summary = _("Nothing was imported. %(problems)s", problems=_problem_summary(report))
        return report
    WRITERS[kind.name](db, checked, report, progress, _Made(now, actor))
    if not report.ok:
        report.imported = 0
        report.one_time_passwords.clear()
        report.summary = _("Nothing was imported. %(problems)s", problems=_problem_summary(report))
        return report
    report.summary = _(
        "Imported %(count)s %(kind)s.",
        count=format(report.imported, ","),
        kind=str(kind.label).lower(),
    )
    record(
        db,
        actor,
        f"import.{kind.name}",
        entity_type="import",
        entity_id=source,
        summary=f"Imported {report.imported:,} {kind.name}" + (f" from {source}" if source else ""),
        after={"rows": report.rows, "imported": report.imported, "warnings": report.warning_count},
    )
    progress(_("Done"), report.rows, report.rows)
    return report


def _problem_summary(report: ImportReport) -> str:
    """How many problems, in how many of the file's rows (not counting the file as a whole)."""
    errors = report.error_count
    rows = len(report.error_lines - {0, 1})  # line 1 is the header: problems of the file
    if rows:
        return ngettext(
            "%(errors)s problem found in %(rows)s of %(total)s rows. Fix them in the file and "
            "upload it again.",
            "%(errors)s problems found in %(rows)s of %(total)s rows. Fix them in the file and "
            "upload it again.",
            errors,
            errors=format(errors, ","),
            rows=format(rows, ","),
            total=format(report.rows, ","),
        )
    return ngettext(
        "%(errors)s problem found. Fix them in the file and upload it again.",
        "%(errors)s problems found. Fix them in the file and upload it again.",
        errors,
        errors=format(errors, ","),
    )


def template_csv(kind_name: str) -> str:
    """An example file: the header and one example row."""
    kind = _kind(kind_name)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(kind.names)
    writer.writerow([c.example for c in kind.columns])
    return buffer.getvalue()
