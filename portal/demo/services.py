"""Demo data: the four demo accounts plus a deterministic catalogue, small or large, with
teaching data (assessments, marks, final grades, lab sessions, attendance, lab reports).

Everything is derived from a seed (and today's date, so that the current term is under way and
its registration window is open), and written with bulk ORM inserts so the large set takes
about a minute.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from portal.accounts.services import hash_password
from portal.demo import teaching
from portal.errors import ValidationError
from portal.models import Course, Meeting, Prerequisite, Registration, Section, Term, User

DEMO_PASSWORD = "demo-pass"  # noqa: S105 - the documented demo password, demo data only
DEMO_ACCOUNTS = ("admin", "instructor", "labstaff", "student")


@dataclass(frozen=True)
class DemoSize:
    students: int
    instructors: int
    lab_staff: int
    courses: int
    sections: int
    registrations: int
    teaching_every: int  # teaching data for one section in this many (and the demo staff's)


SIZES = {
    "small": DemoSize(
        students=60,
        instructors=6,
        lab_staff=3,
        courses=24,
        sections=36,
        registrations=180,
        teaching_every=1,
    ),
    "large": DemoSize(
        students=20_000,
        instructors=400,
        lab_staff=120,
        courses=1_000,
        sections=3_000,
        registrations=150_000,
        teaching_every=10,
    ),
}

DEPARTMENTS = {
    "BIO": "Biology",
    "CHE": "Chemistry",
    "CS": "Computer Science",
    "ECO": "Economics",
    "ENG": "English",
    "HIS": "History",
    "MAT": "Mathematics",
    "PHY": "Physics",
    "PSY": "Psychology",
    "SOC": "Sociology",
}
TOPICS = [
    "Foundations of",
    "Introduction to",
    "Topics in",
    "Methods in",
    "Advanced",
    "Seminar in",
    "Laboratory in",
    "Principles of",
    "Applied",
    "Research in",
]
SUBJECTS = {
    "BIO": ["Cell Biology", "Genetics", "Ecology", "Microbiology", "Evolution"],
    "CHE": ["Organic Chemistry", "Physical Chemistry", "Analytical Methods", "Biochemistry"],
    "CS": ["Programming", "Algorithms", "Databases", "Operating Systems", "Networks"],
    "ECO": ["Microeconomics", "Macroeconomics", "Econometrics", "Development"],
    "ENG": ["Composition", "Poetry", "the Novel", "Rhetoric", "Drama"],
    "HIS": ["Ancient History", "Modern Europe", "World History", "Historiography"],
    "MAT": ["Calculus", "Linear Algebra", "Statistics", "Discrete Mathematics", "Analysis"],
    "PHY": ["Mechanics", "Electromagnetism", "Thermodynamics", "Quantum Physics", "Optics"],
    "PSY": ["Cognition", "Development", "Social Psychology", "Research Methods"],
    "SOC": ["Social Theory", "Urban Studies", "Inequality", "Social Research"],
}
FIRST_NAMES = [
    "Amara",
    "Bea",
    "Chen",
    "Dara",
    "Elif",
    "Farid",
    "Grace",
    "Hana",
    "Ivan",
    "Jonas",
    "Kemi",
    "Liam",
    "Maya",
    "Nikhil",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sami",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoe",
]
LAST_NAMES = [
    "Adeyemi",
    "Bauer",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quispe",
    "Rossi",
    "Singh",
    "Tanaka",
    "Usman",
    "Varga",
    "Wong",
    "Yilmaz",
    "Zhang",
]
LETTERS = ["A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D", "F"]
SLOTS = [
    (time(8, 0), time(9, 30)),
    (time(10, 0), time(11, 30)),
    (time(12, 0), time(13, 30)),
    (time(14, 0), time(15, 30)),
    (time(16, 0), time(17, 30)),
]


class _Ids:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def __call__(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)


def _terms(today: date, new_id: _Ids) -> list[dict[str, Any]]:
    """The previous term (registration long closed) and the current one (registration open
    for two more weeks)."""

    def at(day: date) -> datetime:
        return datetime.combine(day, time(0, 0), tzinfo=UTC)

    def term(
        starts_on: date, code: str, name: str, opens: date, closes: date, add_drop: date
    ) -> dict[str, Any]:
        return {
            "id": new_id(),
            "code": f"{starts_on:%Y}-{code}",
            "name": f"{name} {starts_on:%Y}",
            "starts_on": starts_on,
            "ends_on": starts_on + timedelta(days=110),
            "registration_opens_at": at(opens),
            "registration_closes_at": at(closes),
            "add_drop_deadline": at(add_drop),
            "max_credits": 18,
        }

    past = today - timedelta(days=200)
    current = today - timedelta(days=28)
    return [
        term(
            past,
            "P",
            "Previous term",
            opens=past - timedelta(days=60),
            closes=past + timedelta(days=7),
            add_drop=past + timedelta(days=14),
        ),
        term(
            current,
            "C",
            "Current term",
            opens=current - timedelta(days=45),
            closes=today + timedelta(days=14),
            add_drop=today + timedelta(days=14),
        ),
    ]


def existing_demo_accounts(db: Session) -> list[str]:
    """The demo accounts this database holds (active ones), in the documented order."""
    found = set(
        db.scalars(
            select(User.username).where(
                User.username.in_(DEMO_ACCOUNTS), User.active.is_(True), User.deleted_at.is_(None)
            )
        )
    )
    return [name for name in DEMO_ACCOUNTS if name in found]


def _person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def generate(
    db: Session,
    size: str = "small",
    *,
    seed: int = 2026,
    today: date | None = None,
    upload_dir: Path | None = None,
) -> dict[str, int]:
    """Write the demo data set; refuses to run twice on the same database.

    Lab reports are handed in only when `upload_dir` is given (their files are written there)."""
    if size not in SIZES:
        raise ValidationError(
            _(
                "Unknown demo size %(size)s; use one of %(sizes)s.",
                size=repr(size),
                sizes=", ".join(SIZES),
            )
        )
    if db.scalar(select(User.id).where(User.username == "admin")) is not None:
        raise ValidationError(
            _("This database already holds demo data (the 'admin' account exists).")
        )
    spec = SIZES[size]
    rng = random.Random(seed)
    new_id = _Ids(rng)
    today = today or datetime.now(UTC).date()
    password_hash = hash_password(DEMO_PASSWORD)  # one hash shared by every demo account

    users: list[dict[str, Any]] = [
        {"id": new_id(), "username": "admin", "full_name": "Ada Admin", "role": "admin"},
        {
            "id": new_id(),
            "username": "instructor",
            "full_name": "Dr Ines Instructor",
            "role": "instructor",
        },
        {"id": new_id(), "username": "labstaff", "full_name": "Lars Labstaff", "role": "lab_staff"},
        {
            "id": new_id(),
            "username": "student",
            "full_name": "Sam Student",
            "role": "student",
            "student_number": "S0000001",
        },
    ]
    for i in range(spec.instructors):
        users.append(
            {
                "id": new_id(),
                "username": f"instructor{i + 1:04d}",
                "full_name": "Dr " + _person(rng),
                "role": "instructor",
            }
        )
    for i in range(spec.lab_staff):
        users.append(
            {
                "id": new_id(),
                "username": f"labstaff{i + 1:04d}",
                "full_name": _person(rng),
                "role": "lab_staff",
            }
        )
    for i in range(spec.students):
        users.append(
            {
                "id": new_id(),
                "username": f"student{i + 1:05d}",
                "full_name": _person(rng),
                "role": "student",
                "student_number": f"S{i + 2:07d}",
            }
        )
    for user in users:
        user.setdefault("student_number", None)
        user["password_hash"] = password_hash
        user["email"] = f"{user['username']}@campus.example"
    db.execute(insert(User), users)

    terms = _terms(today, new_id)
    db.execute(insert(Term), terms)

    courses: list[dict[str, Any]] = []
    codes = list(DEPARTMENTS)
    for i in range(spec.courses):
        prefix = codes[i % len(codes)]
        level = 100 + (i // len(codes)) % 4 * 100
        number = level + (i // (len(codes) * 4))
        subject = SUBJECTS[prefix][i % len(SUBJECTS[prefix])]
        topic = TOPICS[(i // len(codes)) % len(TOPICS)]
        courses.append(
            {
                "id": new_id(),
                "code": f"{prefix}{number}",
                "title": f"{topic} {subject}",
                "description": f"{topic} {subject.lower()}: lectures, readings and weekly labs.",
                "credits": rng.choice([3, 3, 3, 4, 4, 2]),
                "department": DEPARTMENTS[prefix],
            }
        )
    db.execute(insert(Course), courses)

    # A 200-level course requires its department's first 100-level course with a C or better.
    first_by_department: dict[str, dict[str, Any]] = {}
    for course in courses:
        first_by_department.setdefault(course["department"], course)
    prerequisites = [
        {
            "id": new_id(),
            "course_id": c["id"],
            "required_course_id": first_by_department[c["department"]]["id"],
            "min_grade": "C",
        }
        for c in courses
        if c["code"][len(c["code"]) - 3] == "2" and c is not first_by_department[c["department"]]
    ][: spec.courses // 5]
    db.execute(insert(Prerequisite), prerequisites)

    instructors = [u for u in users if u["role"] == "instructor"]
    lab_staff = [u for u in users if u["role"] == "lab_staff"]
    students = [u for u in users if u["role"] == "student"]
    sections: list[dict[str, Any]] = []
    meetings: list[dict[str, Any]] = []
    for i in range(spec.sections):
        course = courses[i % len(courses)]
        term = terms[1] if i % 3 else terms[0]
        is_demo_staff = i < 6
        capacity = rng.choice([20, 30, 40, 50, 60, 80])
        section = {
            "id": new_id(),
            "course_id": course["id"],
            "term_id": term["id"],
            "number": f"{i // len(courses) + 1:03d}",
            "instructor_id": (instructors[0] if is_demo_staff else rng.choice(instructors))["id"],
            "lab_staff_id": (lab_staff[0] if is_demo_staff else rng.choice(lab_staff))["id"],
            "capacity": capacity,
            "waitlist_capacity": capacity // 5,
            "room": f"{rng.choice('ABCDEFG')}-{rng.randint(100, 450)}",
            "enrolled_count": 0,
            "waitlist_count": 0,
            "waitlist_seq": 0,
        }
        sections.append(section)
        days = rng.choice([(0, 2), (1, 3), (2, 4), (0, 3), (1, 4)])
        slot = SLOTS[i % len(SLOTS)]
        for day in days:
            meetings.append(
                {
                    "id": new_id(),
                    "section_id": section["id"],
                    "weekday": day,
                    "starts_at": slot[0],
                    "ends_at": slot[1],
                    "kind": "lecture",
                }
            )
    if sections:
        # One small, full section with a waitlist, so the waitlist is visible in the demo.
        sections[1].update(capacity=2, waitlist_capacity=3)

    sections_by_id = {section["id"]: section for section in sections}
    registrations: list[dict[str, Any]] = []
    taken: set[tuple[uuid.UUID, uuid.UUID]] = set()
    term_by_id = {t["id"]: t for t in terms}
    registered_at = datetime.combine(today - timedelta(days=40), time(9, 0), tzinfo=UTC)
    # The demo student holds two graded courses of the previous term and two of the demo
    # instructor's current sections (different courses, no time clash); the rest is random.
    chosen = [(students[0], sections[i]) for i in (0, 3, 2, 4) if i < len(sections)]
    attempts = 0
    while len(registrations) < spec.registrations and attempts < spec.registrations * 3:
        attempts += 1
        if chosen:
            student, section = chosen.pop(0)
        else:
            student = students[rng.randrange(len(students))]
            section = sections[rng.randrange(len(sections))]
        key = (student["id"], section["id"])
        if key in taken:
            continue
        is_past = term_by_id[section["term_id"]] is terms[0]
        row: dict[str, Any] = {
            "id": new_id(),
            "student_id": student["id"],
            "section_id": section["id"],
            "registered_at": registered_at,
            "waitlist_position": None,
            "enrolled_at": None,
            "final_grade": None,
            "dropped_at": None,
        }
        if section["enrolled_count"] < section["capacity"]:
            section["enrolled_count"] += 1
            row.update(status="enrolled", enrolled_at=registered_at)
            if is_past:
                row["final_grade"] = rng.choice(LETTERS)
        elif not is_past and section["waitlist_count"] < section["waitlist_capacity"]:
            section["waitlist_count"] += 1
            section["waitlist_seq"] += 1
            row.update(status="waitlisted", waitlist_position=section["waitlist_seq"])
        else:
            continue
        taken.add(key)
        registrations.append(row)

    # Teaching data; a graded section of the previous term gets its final grades from the marks.
    enrolled: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in registrations:
        if row["status"] == "enrolled":
            enrolled.setdefault(row["section_id"], []).append(row["student_id"])
    keep_open = {sections[i]["id"] for i in (3, 2) if i < len(sections)}
    teaching_rows, final_grades = teaching.build(
        rng,
        new_id,
        today=today,
        terms=terms,
        sections=sections,
        enrolled=enrolled,
        usernames={u["id"]: u["username"] for u in students},
        every=spec.teaching_every,
        keep_open=keep_open,
        with_files=upload_dir is not None,
    )
    for row in registrations:
        if term_by_id[sections_by_id[row["section_id"]]["term_id"]] is terms[0]:
            row["final_grade"] = final_grades.get(
                (row["student_id"], row["section_id"]),
                None if row["section_id"] in keep_open else row["final_grade"],
            )

    db.execute(insert(Section), sections)
    db.execute(insert(Meeting), meetings)
    for start in range(0, len(registrations), 10_000):
        db.execute(insert(Registration), registrations[start : start + 10_000])
    taught = teaching.write(db, teaching_rows, upload_dir)
    db.flush()
    return {
        "users": len(users),
        "terms": len(terms),
        "courses": len(courses),
        "sections": len(sections),
        "meetings": len(meetings),
        "registrations": len(registrations),
        "prerequisites": len(prerequisites),
        **taught,
    }
