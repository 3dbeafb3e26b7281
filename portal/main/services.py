"""What each role's home page shows."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from portal.auth import access
from portal.models import Course, Registration, Section, Term, User


def staff_sections(db: Session, user: User) -> list[Section]:
    return list(
        db.scalars(
            select(Section)
            .join(Section.term)
            .join(Section.course)
            .where(access.staffed_by(user.id, user.role), Section.deleted_at.is_(None))
            .options(
                selectinload(Section.course),
                selectinload(Section.term),
                selectinload(Section.meetings),
            )
            .order_by(Term.starts_on.desc(), Course.code, Section.number)
        )
    )


def admin_counts(db: Session) -> dict[str, int]:
    def count(query: Select[int]) -> int:
        return db.scalar(query) or 0

    return {
        "students": count(select(func.count()).select_from(User).where(User.role == "student")),
        "staff": count(select(func.count()).select_from(User).where(User.role != "student")),
        "courses": count(select(func.count()).select_from(Course)),
        "sections": count(select(func.count()).select_from(Section)),
        "registrations": count(
            select(func.count()).select_from(Registration).where(Registration.status == "enrolled")
        ),
        "waitlisted": count(
            select(func.count())
            .select_from(Registration)
            .where(Registration.status == "waitlisted")
        ),
    }


def term_sections_query(term: Term) -> Select[Section]:
    """The term's sections for the admin's home page, by course code; paging is the caller's."""
    return (
        select(Section)
        .join(Section.course)
        .where(Section.term_id == term.id, Section.deleted_at.is_(None))
        .options(
            selectinload(Section.course),
            selectinload(Section.instructor),
            selectinload(Section.lab_staff),
        )
        .order_by(Course.code, Section.number)
    )


@dataclass(frozen=True)
class SetupStep:
    """One step of setting up a fresh installation, and whether it is done."""

    label: str
    endpoint: str
    done: bool


def setup_steps(db: Session, counts: dict[str, int]) -> list[SetupStep]:
    """What a fresh installation still needs, in the order it is best done."""
    has_terms = db.scalar(select(func.count()).select_from(Term).where(Term.deleted_at.is_(None)))
    return [
        SetupStep(_("Create a term"), "admin.term_create", bool(has_terms)),
        SetupStep(
            _("Add courses (or import them from a CSV file)"),
            "admin.courses",
            counts["courses"] > 0,
        ),
        SetupStep(
            _("Import students and staff from a CSV file (or add them one by one)"),
            "admin.imports",
            counts["students"] > 0,
        ),
        SetupStep(_("Open sections for the term"), "admin.terms", counts["sections"] > 0),
    ]
