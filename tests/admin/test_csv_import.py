"""CSV import: reading odd files, the per-row report, duplicates, size, and all-or-nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from portal.accounts.services import authenticate
from portal.admin import csv_import
from portal.admin.csv_import import MAX_ROWS, check_file, import_file
from portal.models import AuditEntry, Course, Registration, Section, User, utcnow
from tests import factories

USERS_HEADER = "username,full_name,role,email,student_number,password\n"


def problems(report):
    return [(p.line, p.column, p.message) for p in report.problems if p.severity == "error"]


def messages(report):
    return " | ".join(p.message for p in report.problems)


def make_section(db, number, **fields):
    section = factories.make_section(db, **fields)
    section.number = number
    db.flush()
    return section


def check(db, kind, text, encoding="utf-8"):
    data = text.encode(encoding) if isinstance(text, str) else text
    return check_file(db, kind, data, now=factories.now())


# --- Encodings and file shapes -------------------------------------------------------------------


def test_utf8_with_byte_order_mark_is_read_and_header_recognised(db):
    text = USERS_HEADER + "zoe,Zoë Ångström,student,,S900001,long-password\n"
    report = check(db, "users", "\ufeff" + text)
    assert report.ok, problems(report)
    assert report.encoding == "UTF-8 (with byte-order mark)"
    assert report.rows == 1


def test_latin1_file_is_read_with_a_note(db):
    text = USERS_HEADER + "jose,José Nuñez,student,,S900002,\n"
    report = check(db, "users", text, encoding="latin-1")
    assert report.ok, problems(report)
    assert report.encoding.startswith("Windows-1252")
    assert "not UTF-8 (the first non-UTF-8 byte is on line 2)" in report.notes[0]
    result = import_file(
        db, "users", text.encode("latin-1"), actor=None, now=factories.now(), source="x.csv"
    )
    assert result.ok
    assert db.scalar(select(User.full_name).where(User.username == "jose")) == "José Nuñez"


def test_utf16_semicolons_and_blank_lines(db):
    text = "code;title;credits;department\r\nXYZ101;Ölçme;3;Physics\r\n\r\n;;;\r\n"
    report = check(db, "courses", text.encode("utf-16"))
    assert report.ok, problems(report)
    assert report.encoding == "UTF-16"
    assert "Columns are separated by semicolons." in report.notes
    assert "2 empty lines were skipped." in report.notes


def test_unreadable_files_get_one_clear_message(db):
    cases = {
        b"": "The file is empty.",
        b"PK\x03\x04 rest of a zip": "spreadsheet workbook, not a CSV file",
        b"code,title\x00\x01\x02": "binary data",
        b"code,title,credits,department\n": "a header but no data rows",
        b"\n\nfoo": "The first line must be the header",
    }
    for data, expected in cases.items():
        report = check(db, "courses", data)
        assert not report.ok
        assert report.problems[0].line in (0, 1)
        assert expected in report.problems[0].message, (data, report.problems)


def test_wrong_headers_say_which_are_missing_and_unknown(db):
    report = check(db, "users", "Username,Fullname,e-mail,Colour\nann,Ann,ann@x.org,red\n")
    found = messages(report)
    assert "Missing required columns: full_name, role." in found
    assert "Unknown column 'fullname'. Did you mean 'full_name'?" in found
    assert "Unknown column 'colour'." in found
    # Headers are matched without regard to case, spaces or dashes: "e-mail" is "e_mail" (unknown)
    assert "Did you mean 'email'?" in found
    assert report.rows == 0  # rows are not checked against a wrong header


def test_duplicate_header_and_missing_one_of(db):
    report = check(db, "registrations", "term_code,course_code,section_number,term_code\n")
    found = messages(report)
    assert "The column 'term_code' appears twice (columns 1 and 4)." in found
    assert "The file needs a username or a student_number column." in found


def test_rows_with_too_many_or_too_few_values(db):
    text = "code,title,credits,department\nA1,Title, with comma,3,Physics\nA2,Short\n"
    report = check(db, "courses", text)
    assert problems(report) == [
        (
            2,
            "",
            "This line has 5 values but the header has 4 columns (a value that contains the "
            "separator must be in double quotes).",
        ),
        (3, "", "This line has 2 values but the header has 4 columns."),
    ]


def test_quoted_values_spanning_lines_report_the_starting_line(db):
    text = 'code,title,credits,department,description\nA1,T,3,P,"two\nlines"\nA2,T,x,P,\n'
    report = check(db, "courses", text)
    assert problems(report) == [(4, "credits", "'x' is not a whole number.")]


# --- Values, duplicates and the database ---------------------------------------------------------


def test_user_rows_bad_values_and_duplicates(db):
    factories.make_user(db, "student", username="taken", student_number="S000001")
    text = USERS_HEADER + (
        "ann,Ann A,student,ann@campus.example,S100001,\n"  # 2: fine
        "Ann,Ann B,student,,S100002,\n"  # 3: duplicate username (case-insensitive)
        "bob,,teacher,bob-at-example,,short\n"  # 4: no name, bad role, email, password
        "taken,Someone,student,,S100003,\n"  # 5: exists in the database
        "carl,Carl,student,,S000001,\n"  # 6: student number taken in the database
        "dina,Dina,instructor,,X1,\n"  # 7: warning: staff have no student number
        "ann,Ann A,student,ann@campus.example,S100001,\n"  # 8: exact repeat of line 2
        "eve,Eve,student,,,\n"  # 9: students need a number
        "Bad Name,Bad,Admin,,,\n"  # 10: invalid username (echoed as typed)
    )
    report = check(db, "users", text)
    assert set(problems(report)) == {
        (3, "username", "Duplicate username ann: also on line 2."),
        (4, "full_name", "full_name is required."),
        (4, "role", "'teacher' is not a role; use one of: student, instructor, lab_staff, admin."),
        (4, "email", "'bob-at-example' is not an e-mail address."),
        (4, "password", "Passwords need at least 8 characters (this one has 5)."),
        (5, "username", "The user taken already exists."),
        (6, "student_number", "Student number S000001 already belongs to taken."),
        (8, "", "This line repeats line 2 exactly."),
        (9, "student_number", "Students need a student number."),
        (
            10,
            "username",
            "'Bad Name' is not a valid username: 2–64 lower-case letters, digits, '.', '_' or "
            "'-', starting with a letter or digit.",
        ),
    }
    assert report.warning_count == 1
    assert [p.line for p in report.problems if p.severity == "warning"] == [7]
    assert report.error_count == 10
    # 7 of the 9 rows have a problem (line 7 only a warning, line 2 none); listed in line order
    assert "10 problems found in 7 of 9 rows" in report.summary
    lines = [p.line for p in report.problems]
    assert lines == sorted(lines)


def test_course_and_section_rows(db):
    factories.make_course(db, code="HAVE100", title="Existing")
    term = factories.make_term(db, code="2040-FA", name="Fall 2040")
    course = factories.make_course(db, code="SEC100")
    make_section(db, "001", course=course, term=term)
    student = factories.make_user(db, "student", username="stud")
    report = check(
        db,
        "courses",
        "code,title,credits,department\nhave100,Again,3,Physics\nNEW1,New,three,Physics\n"
        "NEW2,New,99,Physics\nbad code!,X,1,Y\n",
    )
    assert set(problems(report)) == {
        (2, "code", "The course code HAVE100 is already used by Existing."),
        (3, "credits", "'three' is not a whole number."),
        (4, "credits", "Credits must be between 0 and 30."),
        (5, "code", "Course codes are 1–20 capital letters, digits or '-', e.g. CS101."),
    }
    report = check(
        db,
        "sections",
        "term_code,course_code,number,capacity,waitlist_capacity,instructor\n"
        "2040-fa,sec100,001,30,,\n"  # exists
        "2040-FA,SEC100,002,-1,x,\n"
        "2099-XX,NOPE,003,10,0,\n"
        f"2040-FA,SEC100,004,10,0,{student.username}\n"
        "2040-FA,SEC100,005,10,0,ghost\n",
    )
    assert set(problems(report)) == {
        (2, "number", "SEC100 already has a section 001 in Fall 2040."),
        (3, "capacity", "Capacity must be between 0 and 10,000."),
        (3, "waitlist_capacity", "'x' is not a whole number."),
        (4, "term_code", "There is no term '2099-XX'."),
        (4, "course_code", "There is no course 'NOPE'."),
        (5, "instructor", "stud is student, not an instructor."),
        (6, "instructor", "There is no user 'ghost'."),
    }


def test_registration_rows_are_tried_against_the_rules_and_nothing_is_kept(db):
    term = factories.make_term(db, code="2041-FA")
    course = factories.make_course(db, code="REG100")
    section = make_section(db, "001", course=course, term=term, capacity=1, waitlist_capacity=1)
    closed = make_section(
        db,
        "001",
        course=factories.make_course(db, code="REG200"),
        term=factories.make_term(db, code="2041-CL", state="closed"),
    )
    students = [factories.make_user(db, "student", username=f"r{i}") for i in range(4)]
    text = "username,student_number,term_code,course_code,section_number\n" + "".join(
        [
            "r0,,2041-FA,REG100,001\n",  # enrolled
            f",{students[1].student_number},2041-FA,REG100,001\n",  # waitlisted (warning)
            "r2,,2041-FA,REG100,001\n",  # full, waitlist full
            "r3,,2041-CL,REG200,001\n",  # registration closed
            "r0,,2041-FA,REG100,001\n",  # exact repeat
            "nobody,,2041-FA,REG100,009\n",
        ]
    )
    report = check(db, "registrations", text)
    found = {(p.line, p.severity): p.message for p in report.problems}
    assert found[(3, "warning")].startswith("REG100-001 is full: r1 goes on the waitlist")
    assert found[(4, "error")] == (
        "r2: REG100-001 is full and its waitlist is full too (1 places)."
    )
    assert found[(5, "error")].startswith("r3: Registration for")
    assert found[(6, "error")] == "This line repeats line 2 exactly."
    assert [m for line, _, m in problems(report) if line == 7] == [
        "There is no user 'nobody'.",
        "REG100 has no section '009' in 2041-FA.",
    ]
    # Listed by line, although the rules' problems (lines 3-5) are found after the rows' own.
    assert [p.line for p in report.problems] == [3, 4, 5, 6, 7, 7]
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Registration)) == 0
    assert (section.enrolled_count, section.waitlist_count) == (0, 0)
    assert closed.enrolled_count == 0


# --- Size ----------------------------------------------------------------------------------------


def test_a_100000_row_dry_run_and_one_row_too_many(db):
    factories.make_course(db, code="C000500", title="Already there")
    rows = "".join(f"C{n:06d},Course {n},3,Department {n % 40}\n" for n in range(MAX_ROWS))
    data = ("code,title,credits,department\n" + rows).encode()
    steps = []
    report = check_file(
        db, "courses", data, now=factories.now(), progress=lambda *a: steps.append(a)
    )
    assert report.rows == MAX_ROWS
    assert problems(report) == [
        (502, "code", "The course code C000500 is already used by Already there.")
    ]
    assert ("Checking rows", 50_000, MAX_ROWS) in steps  # progress is reported on the way
    assert db.scalar(select(func.count()).select_from(Course)) == 1  # a dry run writes nothing

    too_many = data + b"C999999,One more,3,Physics\n"
    report = check_file(db, "courses", too_many, now=factories.now())
    assert problems(report) == [
        (
            0,
            "",
            "The file has more than 100,000 rows. Split it into files of at most 100,000 rows "
            "and import them one after the other.",
        )
    ]


def test_the_report_keeps_a_bounded_list_but_counts_everything(db):
    rows = "".join(f"X{n},T,bad,D\n" for n in range(csv_import.MAX_PROBLEMS_KEPT + 10))
    report = check(db, "courses", "code,title,credits,department\n" + rows)
    assert report.error_count == csv_import.MAX_PROBLEMS_KEPT + 10
    assert len(report.problems) == csv_import.MAX_PROBLEMS_KEPT
    assert report.more_problems == 10


# --- Importing -----------------------------------------------------------------------------------


def test_user_import_hashes_passwords_and_hands_out_one_time_ones(db):
    admin = factories.make_user(db, "admin")
    text = USERS_HEADER + "newa,New A,student,,S700001,given-password\nnewb,New B,lab_staff,,,\n"
    report = import_file(
        db, "users", text.encode(), actor=admin, now=factories.now(), source="people.csv"
    )
    assert report.ok and report.imported == 2
    db.commit()
    assert authenticate(db, "newa", "given-password", now=utcnow()) is not None
    [(username, one_time)] = report.one_time_passwords
    assert username == "newb" and len(one_time) >= 12
    assert authenticate(db, "newb", one_time, now=utcnow()) is not None
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "import.users"))
    assert entry.actor_id == admin.id and entry.summary == "Imported 2 users from people.csv"
    assert entry.after == {"rows": 2, "imported": 2, "warnings": 0}


def test_sections_import_assigns_staff(db):
    term = factories.make_term(db, code="2042-FA")
    course = factories.make_course(db, code="STF100")
    teacher = factories.make_user(db, "instructor", username="teach")
    lab = factories.make_user(db, "lab_staff", username="labby")
    text = (
        "term_code,course_code,number,capacity,waitlist_capacity,room,instructor,lab_staff\n"
        "2042-FA,STF100,001,25,5,R1,TEACH,labby\n2042-FA,STF100,002,25,,,,\n"
    )
    report = import_file(db, "sections", text.encode(), actor=None, now=factories.now())
    assert report.ok, problems(report)
    sections = db.scalars(
        select(Section).where(Section.course_id == course.id).order_by(Section.number)
    ).all()
    assert [(s.number, s.instructor_id, s.lab_staff_id, s.waitlist_capacity) for s in sections] == [
        ("001", teacher.id, lab.id, 5),
        ("002", None, None, 0),
    ]
    assert all(s.term_id == term.id for s in sections)


def test_registration_import_is_all_or_nothing(db):
    """The file passed its dry run, then the last seat went to someone else: nothing is kept."""
    term = factories.make_term(db, code="2043-FA")
    section = make_section(
        db,
        "001",
        course=factories.make_course(db, code="ALL100"),
        term=term,
        capacity=2,
        waitlist_capacity=0,
    )
    for i in range(3):
        factories.make_user(db, "student", username=f"a{i}")
    db.commit()
    text = (
        b"username,term_code,course_code,section_number\n"
        b"a0,2043-FA,ALL100,001\na1,2043-FA,ALL100,001\n"
    )
    assert check_file(db, "registrations", text, now=factories.now()).ok
    db.rollback()

    from portal.registration.services import register

    register(db, db.scalar(select(User).where(User.username == "a2")), section, now=factories.now())
    db.commit()

    report = import_file(db, "registrations", text, actor=None, now=factories.now())
    assert not report.ok
    assert report.imported == 0
    assert report.summary.startswith("Nothing was imported. 1 problem found")
    assert [p.line for p in report.problems if p.severity == "error"] == [3]
    db.rollback()  # what the import job does when the report is not ok
    registered = db.scalars(select(User.username).join(Registration.student)).all()
    assert registered == ["a2"]
    db.refresh(section)
    assert section.enrolled_count == 1


def test_imported_registrations_are_audited_as_the_administrators(db):
    admin = factories.make_user(db, "admin")
    term = factories.make_term(db, code="2044-FA")
    make_section(db, "001", course=factories.make_course(db, code="AUD100"), term=term)
    student = factories.make_user(db, "student", username="b0")
    db.commit()
    text = b"username,term_code,course_code,section_number\nb0,2044-FA,AUD100,001\n"
    assert import_file(db, "registrations", text, actor=admin, now=factories.now()).ok
    [entry] = db.scalars(select(AuditEntry).where(AuditEntry.action == "registration.enrol"))
    assert (entry.actor_id, entry.after["student_id"]) == (admin.id, str(student.id))
    assert entry.reason == "Imported from a CSV file."


def test_template_files_pass_their_own_header_check(db):
    for kind in csv_import.KINDS:
        text = csv_import.template_csv(kind)
        header = text.splitlines()[0].split(",")
        assert header == csv_import.KINDS[kind].names
