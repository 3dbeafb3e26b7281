"""Foundation pages: catalogue search, a section, a student's registrations, the admin user list.

PAGES is also used by tests/benchmarks/test_query_counts.py, which checks in `make test` that
each page issues the same number of SQL queries with little and with more data.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.benchmarks.harness import Page

TITLE = "Foundation pages"


def current_term_code(db: Session) -> str:
    from portal.models import Term

    code = db.scalar(
        select(Term.code).where(Term.deleted_at.is_(None)).order_by(Term.starts_on.desc()).limit(1)
    )
    assert code, "the demo data has no term"
    return code


def busiest_section_path(db: Session) -> str:
    """The demo's smallest section that the demo student holds no registration in: the page
    then runs every registration rule to say whether Register can succeed, in every data size
    (a section the student is already in answers after the first rule)."""
    from portal.models import Registration, Section, User

    student = select(User.id).where(User.username == "student").scalar_subquery()
    held = select(Registration.section_id).where(Registration.student_id == student)
    section_id = db.scalar(
        select(Section.id)
        .where(Section.deleted_at.is_(None), Section.id.not_in(held))
        .order_by(Section.capacity, Section.id)
        .limit(1)
    )
    assert section_id, "the demo data has no section"
    return f"/sections/{section_id}"


PAGES = [
    Page(
        "Catalogue search", "student", lambda db: f"/courses?q=intro&term={current_term_code(db)}"
    ),
    Page("Section page", "student", busiest_section_path),
    Page("My registrations", "student", lambda db: "/registrations"),
    Page("Admin user list", "admin", lambda db: "/admin/users/"),
]


def run(context: Any) -> list[dict[str, Any]]:
    return context.measure_pages(PAGES)
