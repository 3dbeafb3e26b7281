"""Request and response schemas of the API (marshmallow); the OpenAPI document is built from
them. A response schema dumps what the services return (models, their result objects) as it is:
each field names where its value comes from (`attribute="section.term.code"`), and a view adds
only what the object does not hold itself, with `Extended(item, name=value)`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import marshmallow
from flask import url_for
from marshmallow import fields, validate

from portal.accounts.services import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    USER_FIELD_MAX_LENGTH,
)
from portal.models import ASSESSMENT_KINDS, ATTENDANCE_STATUSES, REGISTRATION_STATUSES, ROLES


@dataclass(frozen=True)
class Extended:
    """An object to dump with values it does not hold itself (a course with the sections a
    search chose, a term with its number of sections): `values` first, then the item's own."""

    item: Any
    values: dict[str, Any]

    def __init__(self, item: Any, **values: Any) -> None:
        object.__setattr__(self, "item", item)
        object.__setattr__(self, "values", values)


class Schema(marshmallow.Schema):
    """Reads values from models, result objects, dicts and `Extended` alike; a dotted
    `attribute` through an absent relation (a section without an instructor) dumps as null."""

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        name, _, rest = attr.partition(".")
        while isinstance(obj, Extended):
            obj = obj.values if name in obj.values else obj.item
        value = super().get_attribute(obj, name, default)
        if rest and value is not None and value is not default:
            return self.get_attribute(value, rest, default)
        return None if rest and value is None else value


class LiveList(fields.List):
    """A list of soft-deletable rows (a section's meetings), without the deleted ones."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        live = None if value is None else [row for row in value if row.deleted_at is None]
        return super()._serialize(live, attr, obj, **kwargs)


class Link(fields.String):
    """The address of an endpoint for the dumped object: `Link("x.y", {"item_id": "id"})`."""

    _CHECK_ATTRIBUTE = False

    def __init__(self, endpoint: str, arguments: dict[str, str], **kwargs: Any) -> None:
        self.endpoint = endpoint
        self.arguments = arguments  # URL argument -> attribute of the dumped object
        super().__init__(**kwargs)

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> str:
        values = {name: getattr(obj, source) for name, source in self.arguments.items()}
        return url_for(self.endpoint, **values)


# --- Errors ---------------------------------------------------------------------------------------


class FieldErrorSchema(Schema):
    location = fields.String(required=True, metadata={"description": "json, query, path or form"})
    field = fields.String(required=True, metadata={"description": "dotted path of the field"})
    message = fields.String(required=True)


class ProblemSchema(Schema):
    """RFC 9457 problem details."""

    type = fields.String(required=True, metadata={"example": "about:blank"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    instance = fields.String()
    request_id = fields.String()
    errors = fields.List(fields.Nested(FieldErrorSchema))


# --- Paging ---------------------------------------------------------------------------------------


class PageArgsSchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


class LinksSchema(Schema):
    self = fields.String(required=True)
    first = fields.String(required=True)
    last = fields.String(required=True)
    prev = fields.String(allow_none=True, required=True)
    next = fields.String(allow_none=True, required=True)


class PageSchema(Schema):
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total = fields.Integer(required=True)
    pages = fields.Integer(required=True)
    links = fields.Nested(LinksSchema, required=True)


def _items(schema: type[Schema], shape: type[Schema], suffix: str) -> type[Schema]:
    """`XListSchema` or `XPageSchema`: the items of `schema` alone or with the page envelope."""
    name = schema.__name__.removesuffix("Schema") + suffix
    items = fields.List(fields.Nested(schema), required=True)
    return type(name, (shape,), {"items": items, "__module__": __name__})


def list_of(schema: type[Schema]) -> type[Schema]:
    return _items(schema, Schema, "ListSchema")


def page_of(schema: type[Schema]) -> type[Schema]:
    return _items(schema, PageSchema, "PageSchema")


# --- People ---------------------------------------------------------------------------------------


class PersonSchema(Schema):
    id = fields.UUID(required=True)
    username = fields.String(required=True)
    full_name = fields.String(required=True)
    student_number = fields.String(allow_none=True, required=True)


class MeSchema(PersonSchema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    email = fields.String(required=True)
    authenticated_by = fields.String(required=True, validate=validate.OneOf(["session", "token"]))


# --- Catalogue ------------------------------------------------------------------------------------


class TermSchema(Schema):
    id = fields.UUID(required=True)
    code = fields.String(required=True)
    name = fields.String(required=True)
    starts_on = fields.Date(required=True)
    ends_on = fields.Date(required=True)
    registration_opens_at = fields.DateTime(required=True)
    registration_closes_at = fields.DateTime(required=True)
    add_drop_deadline = fields.DateTime(required=True)
    max_credits = fields.Integer(required=True)


TermListSchema = list_of(TermSchema)


class MeetingSchema(Schema):
    weekday = fields.Integer(required=True, metadata={"description": "0 Monday … 6 Sunday"})
    label = fields.String(required=True)
    starts_at = fields.Time(required=True)
    ends_at = fields.Time(required=True)
    kind = fields.String(required=True)


class SectionSummarySchema(Schema):
    id = fields.UUID(required=True)
    label = fields.String(required=True)
    number = fields.String(required=True)
    term_code = fields.String(attribute="term.code", required=True)
    room = fields.String(required=True)
    capacity = fields.Integer(required=True)
    enrolled = fields.Integer(attribute="enrolled_count", required=True)
    seats_left = fields.Integer(required=True)
    waitlist_capacity = fields.Integer(required=True)
    waitlisted = fields.Integer(attribute="waitlist_count", required=True)
    meetings = LiveList(fields.Nested(MeetingSchema), required=True)


class CourseSchema(Schema):
    code = fields.String(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)
    credits = fields.Integer(required=True)
    department = fields.String(required=True)
    sections = fields.List(fields.Nested(SectionSummarySchema), required=True)


CoursePageSchema = page_of(CourseSchema)


class CourseQuerySchema(PageArgsSchema):
    q = fields.String(load_default="", validate=validate.Length(max=100))
    term = fields.String(
        load_default="", validate=validate.Length(max=20), metadata={"description": "term code"}
    )
    department = fields.String(load_default="", validate=validate.Length(max=100))


class PrerequisiteSchema(Schema):
    course_code = fields.String(attribute="required_course.code", required=True)
    min_grade = fields.String(required=True)


class CourseDetailSchema(CourseSchema):
    prerequisites = LiveList(fields.Nested(PrerequisiteSchema), required=True)


class SectionDetailSchema(SectionSummarySchema):
    course_code = fields.String(attribute="course.code", required=True)
    course_title = fields.String(attribute="course.title", required=True)
    credits = fields.Integer(attribute="course.credits", required=True)
    term_name = fields.String(attribute="term.name", required=True)
    instructor = fields.String(attribute="instructor.full_name", allow_none=True, required=True)
    lab_staff = fields.String(attribute="lab_staff.full_name", allow_none=True, required=True)


# --- Registrations --------------------------------------------------------------------------------


class RegistrationSchema(Schema):
    id = fields.UUID(required=True)
    section_id = fields.UUID(required=True)
    section_label = fields.String(attribute="section.label", required=True)
    course_title = fields.String(attribute="section.course.title", required=True)
    term_code = fields.String(attribute="section.term.code", required=True)
    credits = fields.Integer(attribute="section.course.credits", required=True)
    status = fields.String(required=True, validate=validate.OneOf(REGISTRATION_STATUSES))
    waitlist_position = fields.Integer(allow_none=True, required=True)
    registered_at = fields.DateTime(required=True)
    enrolled_at = fields.DateTime(allow_none=True, required=True)
    dropped_at = fields.DateTime(allow_none=True, required=True)
    final_grade = fields.String(allow_none=True, required=True)


RegistrationListSchema = list_of(RegistrationSchema)


class RegistrationCreateSchema(Schema):
    section_id = fields.UUID(required=True)


class DropResultSchema(Schema):
    registration = fields.Nested(RegistrationSchema, required=True)


# --- Grades ---------------------------------------------------------------------------------------


class AssessmentSchema(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(ASSESSMENT_KINDS))
    weight = fields.Float(required=True)
    max_points = fields.Float(required=True)
    due_at = fields.DateTime(allow_none=True, required=True)


class OwnMarkSchema(AssessmentSchema):
    points = fields.Float(allow_none=True, required=True)


class CourseResultSchema(Schema):
    registration_id = fields.UUID(attribute="registration.id", required=True)
    section_id = fields.UUID(attribute="section.id", required=True)
    section_label = fields.String(attribute="section.label", required=True)
    course_title = fields.String(attribute="section.course.title", required=True)
    term_code = fields.String(attribute="section.term.code", required=True)
    credits = fields.Integer(attribute="section.course.credits", required=True)
    percentage = fields.Float(allow_none=True, required=True)
    so_far = fields.Float(allow_none=True, required=True)
    provisional_letter = fields.String(
        allow_none=True,
        required=True,
        metadata={"description": "the letter of `so_far` (marked work only); null until a mark"},
    )
    marked_share = fields.Float(
        allow_none=True,
        required=True,
        metadata={"description": "the share of the course's weight (%) that is marked"},
    )
    final_grade = fields.String(allow_none=True, required=True)
    weights_problem = fields.String(allow_none=True, required=True)
    attendance_rate = fields.Float(allow_none=True, required=True)
    assessments = fields.List(fields.Nested(OwnMarkSchema), required=True)


class TermGpaSchema(Schema):
    term_code = fields.String(attribute="term.code", required=True)
    gpa = fields.Float(allow_none=True, required=True)
    credits_earned = fields.Integer(required=True)


class MyGradesSchema(Schema):
    courses = fields.List(fields.Nested(CourseResultSchema), required=True)
    terms = fields.List(fields.Nested(TermGpaSchema), required=True)
    cumulative_gpa = fields.Float(allow_none=True, required=True)
    credits_earned = fields.Integer(required=True)


class GradebookMarkSchema(Schema):
    assessment_id = fields.UUID(required=True)
    points = fields.Float(allow_none=True, required=True)


class GradebookRowSchema(Schema):
    registration_id = fields.UUID(required=True)
    student = fields.Nested(PersonSchema, required=True)
    final_grade = fields.String(allow_none=True, required=True)
    percentage = fields.Float(allow_none=True, required=True)
    so_far = fields.Float(allow_none=True, required=True)
    letter = fields.String(allow_none=True, required=True)
    marks = fields.List(fields.Nested(GradebookMarkSchema), required=True)


class GradebookSchema(Schema):
    section_id = fields.UUID(attribute="section.id", required=True)
    section_label = fields.String(attribute="section.label", required=True)
    is_final = fields.Boolean(required=True)
    kinds = fields.List(fields.String(), required=True)
    shows_totals = fields.Boolean(required=True)
    weights_problem = fields.String(allow_none=True, required=True)
    assessments = fields.List(fields.Nested(AssessmentSchema), required=True)
    rows = fields.List(fields.Nested(GradebookRowSchema), required=True)


class MarkInputSchema(Schema):
    points = fields.Float(
        required=True,
        allow_none=True,
        allow_nan=False,
        metadata={
            "description": "points, or null to clear the mark; at most 2 decimal places "
            "(more is refused with 422, never rounded)"
        },
    )
    reason = fields.String(
        load_default="",
        validate=validate.Length(max=500),
        metadata={"description": "required by an administrator after grades are final"},
    )


class MarkSchema(Schema):
    assessment_id = fields.UUID(required=True)
    student_id = fields.UUID(required=True)
    points = fields.Float(allow_none=True, required=True)
    percentage = fields.Float(allow_none=True, required=True)
    letter = fields.String(allow_none=True, required=True)
    final_grade = fields.String(allow_none=True, required=True)


# --- Attendance -----------------------------------------------------------------------------------


class LabSessionSchema(Schema):
    id = fields.UUID(required=True)
    section_id = fields.UUID(required=True)
    held_on = fields.Date(required=True)
    starts_at = fields.Time(required=True)
    ends_at = fields.Time(required=True)
    room = fields.String(required=True)


LabSessionListSchema = list_of(LabSessionSchema)


class LabSessionInputSchema(Schema):
    held_on = fields.Date(required=True)
    starts_at = fields.Time(required=True)
    ends_at = fields.Time(required=True)
    room = fields.String(load_default="", validate=validate.Length(max=50))


class CountsSchema(Schema):
    present = fields.Integer(required=True)
    late = fields.Integer(required=True)
    absent = fields.Integer(required=True)
    excused = fields.Integer(required=True)
    rate = fields.Float(allow_none=True, required=True, metadata={"description": "percent"})


class AttendanceLineSchema(Schema):
    student = fields.Nested(PersonSchema, required=True)
    status = fields.String(
        allow_none=True, required=True, validate=validate.OneOf(ATTENDANCE_STATUSES)
    )


class AttendanceSheetSchema(Schema):
    lab_session = fields.Nested(LabSessionSchema, required=True)
    counts = fields.Nested(CountsSchema, required=True)
    lines = fields.List(fields.Nested(AttendanceLineSchema), required=True)


class AttendanceInputSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(ATTENDANCE_STATUSES))


class AttendanceRecordSchema(Schema):
    lab_session_id = fields.UUID(required=True)
    student_id = fields.UUID(required=True)
    status = fields.String(required=True, validate=validate.OneOf(ATTENDANCE_STATUSES))


# --- Submissions ----------------------------------------------------------------------------------


class SubmissionSchema(Schema):
    id = fields.UUID(required=True)
    assessment_id = fields.UUID(required=True)
    student_id = fields.UUID(required=True)
    attempt = fields.Integer(required=True)
    original_name = fields.String(required=True)
    size = fields.Integer(required=True)
    content_type = fields.String(required=True)
    sha256 = fields.String(attribute="file_sha256", required=True)
    submitted_at = fields.DateTime(required=True)
    late = fields.Boolean(required=True)
    download = Link(
        "api_submissions.download",
        {"submission_id": "id"},
        required=True,
        metadata={"description": "URL of the file"},
    )


class SubmissionAssessmentSchema(AssessmentSchema):
    section_id = fields.UUID(required=True)
    section_label = fields.String(attribute="section.label", required=True)


class MySubmissionsItemSchema(Schema):
    assessment = fields.Nested(SubmissionAssessmentSchema, required=True)
    is_final = fields.Boolean(required=True)
    attempts = fields.List(fields.Nested(SubmissionSchema), attribute="history", required=True)


class MySubmissionsSchema(Schema):
    items = fields.List(fields.Nested(MySubmissionsItemSchema), required=True)


class StudentSubmissionSchema(Schema):
    student = fields.Nested(PersonSchema, required=True)
    attempts = fields.Integer(required=True)
    latest = fields.Nested(SubmissionSchema, allow_none=True, required=True)


class AssessmentSubmissionsSchema(Schema):
    assessment = fields.Nested(AssessmentSchema, required=True)
    late_count = fields.Integer(required=True)
    students = fields.List(fields.Nested(StudentSubmissionSchema), required=True)


class SectionSubmissionsSchema(Schema):
    section_id = fields.UUID(attribute="section.id", required=True)
    section_label = fields.String(attribute="section.label", required=True)
    assessments = fields.List(fields.Nested(AssessmentSubmissionsSchema), required=True)


# --- Administration -------------------------------------------------------------------------------


class UserSchema(PersonSchema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    email = fields.String(required=True)
    active = fields.Boolean(required=True)
    last_login_at = fields.DateTime(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)


UserPageSchema = page_of(UserSchema)


class UserQuerySchema(PageArgsSchema):
    q = fields.String(load_default="", validate=validate.Length(max=100))
    role = fields.String(load_default="", validate=validate.OneOf(["", *ROLES]))


def _user_limit(field: str) -> validate.Length:
    """The length check of an account field, from the accounts service's limits."""
    return validate.Length(max=USER_FIELD_MAX_LENGTH[field])


class UserInputSchema(Schema):
    username = fields.String(required=True, validate=_user_limit("username"))
    full_name = fields.String(required=True, validate=_user_limit("full_name"))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    email = fields.String(load_default="", validate=_user_limit("email"))
    student_number = fields.String(
        load_default=None, allow_none=True, validate=_user_limit("student_number")
    )


class UserCreateSchema(UserInputSchema):
    password = fields.String(
        required=True,
        validate=validate.Length(min=MIN_PASSWORD_LENGTH, max=MAX_PASSWORD_LENGTH),
    )


class UserPatchSchema(Schema):
    username = fields.String(validate=_user_limit("username"))
    full_name = fields.String(validate=_user_limit("full_name"))
    role = fields.String(validate=validate.OneOf(ROLES))
    email = fields.String(validate=_user_limit("email"))
    student_number = fields.String(allow_none=True, validate=_user_limit("student_number"))
    active = fields.Boolean()


class ArchivedQuerySchema(PageArgsSchema):
    archived = fields.Boolean(load_default=False, metadata={"description": "include archived"})
    q = fields.String(load_default="", validate=validate.Length(max=100))


class AdminTermSchema(TermSchema):
    archived = fields.Boolean(attribute="is_deleted", required=True)
    sections = fields.Integer(
        attribute="section_count", dump_default=None, allow_none=True, required=True
    )


AdminTermListSchema = list_of(AdminTermSchema)


class TermInputSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(max=20))
    name = fields.String(required=True, validate=validate.Length(max=100))
    starts_on = fields.Date(required=True)
    ends_on = fields.Date(required=True)
    registration_opens_at = fields.AwareDateTime(required=True, default_timezone=None)
    registration_closes_at = fields.AwareDateTime(required=True)
    add_drop_deadline = fields.AwareDateTime(required=True)
    max_credits = fields.Integer(load_default=18, validate=validate.Range(min=-1000, max=1000))


class AdminCourseSchema(Schema):
    id = fields.UUID(required=True)
    code = fields.String(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)
    credits = fields.Integer(required=True)
    department = fields.String(required=True)
    archived = fields.Boolean(attribute="is_deleted", required=True)


AdminCoursePageSchema = page_of(AdminCourseSchema)


class CourseInputSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(max=20))
    title = fields.String(required=True, validate=validate.Length(max=200))
    credits = fields.Integer(required=True, validate=validate.Range(min=-1000, max=1000))
    department = fields.String(required=True, validate=validate.Length(max=100))
    description = fields.String(load_default="", validate=validate.Length(max=5000))


class AdminSectionSchema(Schema):
    id = fields.UUID(required=True)
    term_code = fields.String(attribute="term.code", required=True)
    course_code = fields.String(attribute="course.code", required=True)
    number = fields.String(required=True)
    label = fields.String(required=True)
    capacity = fields.Integer(required=True)
    waitlist_capacity = fields.Integer(required=True)
    room = fields.String(required=True)
    instructor_username = fields.String(
        attribute="instructor.username", allow_none=True, required=True
    )
    lab_staff_username = fields.String(
        attribute="lab_staff.username", allow_none=True, required=True
    )
    enrolled = fields.Integer(attribute="enrolled_count", required=True)
    waitlisted = fields.Integer(attribute="waitlist_count", required=True)
    archived = fields.Boolean(attribute="is_deleted", required=True)


AdminSectionPageSchema = page_of(AdminSectionSchema)


class SectionInputSchema(Schema):
    term_code = fields.String(required=True, validate=validate.Length(max=20))
    course_code = fields.String(required=True, validate=validate.Length(max=20))
    number = fields.String(required=True, validate=validate.Length(max=10))
    capacity = fields.Integer(required=True, validate=validate.Range(min=-100_000, max=100_000))
    waitlist_capacity = fields.Integer(
        load_default=0, validate=validate.Range(min=-100_000, max=100_000)
    )
    room = fields.String(load_default="", validate=validate.Length(max=50))
    instructor_username = fields.String(load_default="", validate=_user_limit("username"))
    lab_staff_username = fields.String(load_default="", validate=_user_limit("username"))


class SectionUpdateResultSchema(AdminSectionSchema):
    promoted_from_waitlist = fields.Integer(required=True)


class ArchiveInputSchema(Schema):
    archived = fields.Boolean(
        required=True, metadata={"description": "true archives, false restores"}
    )


class ArchiveResultSchema(Schema):
    archived = fields.Boolean(required=True)
    message = fields.String(required=True)
