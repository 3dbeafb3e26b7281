"""Plain dicts for the API's answers, made from the models and what the services return (one
function per shape, named for the schema in portal/api/schemas.py that documents it)."""

from __future__ import annotations

from typing import Any

from flask import url_for

from portal.attendance.services import Rate
from portal.models import (
    Assessment,
    Course,
    LabSession,
    Meeting,
    Registration,
    Section,
    Submission,
    Term,
    User,
)


def person(user: Any) -> dict[str, Any]:
    """User or the gradebook's RosterStudent."""
    return {
        "id": user.id,
        "username": user.username,
        "full_name": user.full_name,
        "student_number": user.student_number,
    }


def me(user: User, authenticated_by: str) -> dict[str, Any]:
    return {
        **person(user),
        "role": user.role,
        "email": user.email,
        "authenticated_by": authenticated_by,
    }


def user(account: User) -> dict[str, Any]:
    return {
        **person(account),
        "role": account.role,
        "email": account.email,
        "active": account.active,
        "last_login_at": account.last_login_at,
        "created_at": account.created_at,
    }


def term(item: Term) -> dict[str, Any]:
    return {
        "id": item.id,
        "code": item.code,
        "name": item.name,
        "starts_on": item.starts_on,
        "ends_on": item.ends_on,
        "registration_opens_at": item.registration_opens_at,
        "registration_closes_at": item.registration_closes_at,
        "add_drop_deadline": item.add_drop_deadline,
        "max_credits": item.max_credits,
    }


def meeting(item: Meeting) -> dict[str, Any]:
    return {
        "weekday": item.weekday,
        "label": item.label,
        "starts_at": item.starts_at,
        "ends_at": item.ends_at,
        "kind": item.kind,
    }


def section_summary(section: Section) -> dict[str, Any]:
    return {
        "id": section.id,
        "label": section.label,
        "number": section.number,
        "term_code": section.term.code,
        "room": section.room,
        "capacity": section.capacity,
        "enrolled": section.enrolled_count,
        "seats_left": section.seats_left,
        "waitlist_capacity": section.waitlist_capacity,
        "waitlisted": section.waitlist_count,
        "meetings": [meeting(m) for m in section.meetings if m.deleted_at is None],
    }


def section_detail(section: Section) -> dict[str, Any]:
    return {
        **section_summary(section),
        "course_code": section.course.code,
        "course_title": section.course.title,
        "credits": section.course.credits,
        "term_name": section.term.name,
        "instructor": section.instructor.full_name if section.instructor else None,
        "lab_staff": section.lab_staff.full_name if section.lab_staff else None,
    }


def course(item: Course, sections: list[Section]) -> dict[str, Any]:
    return {
        "code": item.code,
        "title": item.title,
        "description": item.description,
        "credits": item.credits,
        "department": item.department,
        "sections": [section_summary(s) for s in sections],
    }


def course_detail(item: Course, sections: list[Section]) -> dict[str, Any]:
    return {
        **course(item, sections),
        "prerequisites": [
            {"course_code": p.required_course.code, "min_grade": p.min_grade}
            for p in item.prerequisites
            if p.deleted_at is None
        ],
    }


def registration(item: Registration) -> dict[str, Any]:
    section = item.section
    return {
        "id": item.id,
        "section_id": section.id,
        "section_label": section.label,
        "course_title": section.course.title,
        "term_code": section.term.code,
        "credits": section.course.credits,
        "status": item.status,
        "waitlist_position": item.waitlist_position,
        "registered_at": item.registered_at,
        "enrolled_at": item.enrolled_at,
        "dropped_at": item.dropped_at,
        "final_grade": item.final_grade,
    }


def assessment(item: Assessment) -> dict[str, Any]:
    return {
        "id": item.id,
        "name": item.name,
        "kind": item.kind,
        "weight": item.weight,
        "max_points": item.max_points,
        "due_at": item.due_at,
    }


def lab_session(item: LabSession) -> dict[str, Any]:
    return {
        "id": item.id,
        "section_id": item.section_id,
        "held_on": item.held_on,
        "starts_at": item.starts_at,
        "ends_at": item.ends_at,
        "room": item.room,
    }


def counts(rate: Rate) -> dict[str, Any]:
    return {
        "present": rate.present,
        "late": rate.late,
        "absent": rate.absent,
        "excused": rate.excused,
        "rate": rate.rate,
    }


def submission(item: Submission) -> dict[str, Any]:
    return {
        "id": item.id,
        "assessment_id": item.assessment_id,
        "student_id": item.student_id,
        "attempt": item.attempt,
        "original_name": item.original_name,
        "size": item.size,
        "content_type": item.content_type,
        "sha256": item.file_sha256,
        "submitted_at": item.submitted_at,
        "late": item.late,
        "download": url_for("api_submissions.download", submission_id=item.id),
    }
