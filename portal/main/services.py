"""What each role's home page shows."""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from portal.models import Course, Registration, Section, Term, User


def staff_sections(db: Session, user: User) -> list[Section]:
    column = Section.instructor_id if user.role == "instructor" else Section.lab_staff_id
    return list(
        db.scalars(
            select(Section)
            .join(Section.term)
            .join(Section.course)
            .where(column == user.id, Section.deleted_at.is_(None))
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
