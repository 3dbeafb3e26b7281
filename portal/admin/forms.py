"""Admin forms: terms, courses, sections (with staff), meetings, and the CSV upload."""

from babel.dates import get_day_names
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    DateField,
    DateTimeLocalField,
    IntegerField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, InputRequired, NumberRange, Optional

from portal.admin.csv_import import KINDS
from portal.admin.services import MEETING_KIND_LABELS
from portal.validators import length


def weekday_choices() -> list[tuple[str, str]]:
    """Monday (0) to Sunday (6), abbreviated in the request's language (CLDR's names)."""
    names = get_day_names("abbreviated", locale=get_locale() or "en")
    return [(str(day), str(names[day])) for day in range(7)]


DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


class TermForm(FlaskForm):
    code = StringField(
        _l("Code"),
        validators=[DataRequired(), length(max=20)],
        description=_l("Short and unique, e.g. 2026-FA. Used in CSV files."),
    )
    name = StringField(_l("Name"), validators=[DataRequired(), length(max=100)])
    starts_on = DateField(_l("First day"), validators=[InputRequired()])
    ends_on = DateField(_l("Last day"), validators=[InputRequired()])
    registration_opens_at = DateTimeLocalField(
        _l("Registration opens (UTC)"), format=DATETIME_FORMAT, validators=[InputRequired()]
    )
    registration_closes_at = DateTimeLocalField(
        _l("Registration closes (UTC)"), format=DATETIME_FORMAT, validators=[InputRequired()]
    )
    add_drop_deadline = DateTimeLocalField(
        _l("Add/drop deadline (UTC)"), format=DATETIME_FORMAT, validators=[InputRequired()]
    )
    max_credits = IntegerField(
        _l("Credit limit per student"),
        default=18,
        validators=[InputRequired(), NumberRange(min=1, max=60)],
    )
    submit = SubmitField(_l("Save"))


class CourseForm(FlaskForm):
    code = StringField(
        _l("Code"),
        validators=[DataRequired(), length(max=20)],
        description=_l("Unique, e.g. CS101."),
    )
    title = StringField(_l("Title"), validators=[DataRequired(), length(max=200)])
    department = StringField(
        _l("Department"),
        validators=[DataRequired(), length(max=100)],
        render_kw={"list": "departments", "autocomplete": "off"},
    )
    credits = IntegerField(_l("Credits"), validators=[InputRequired(), NumberRange(min=0, max=30)])
    description = TextAreaField(_l("Description"), validators=[Optional(), length(max=5000)])
    submit = SubmitField(_l("Save"))


class SectionForm(FlaskForm):
    term_code = SelectField(_l("Term"), validators=[DataRequired()])
    course_code = StringField(
        _l("Course code"),
        validators=[DataRequired(), length(max=20)],
        description=_l("An existing course, e.g. CS101."),
    )
    number = StringField(
        _l("Section number"),
        validators=[DataRequired(), length(max=10)],
        description=_l("Unique within the course and term, e.g. 001."),
    )
    capacity = IntegerField(_l("Seats"), validators=[InputRequired(), NumberRange(min=0)])
    waitlist_capacity = IntegerField(
        _l("Waitlist places"), default=0, validators=[InputRequired(), NumberRange(min=0)]
    )
    room = StringField(_l("Room"), validators=[Optional(), length(max=50)])
    instructor_username = SelectField(_l("Instructor"), validate_choice=False)
    lab_staff_username = SelectField(_l("Lab staff"), validate_choice=False)
    submit = SubmitField(_l("Save"))


class MeetingForm(FlaskForm):
    weekday = SelectField(
        _l("Day"),
        choices=weekday_choices,
        validators=[InputRequired()],
    )
    starts_at = TimeField(_l("Starts"), validators=[InputRequired()])
    ends_at = TimeField(_l("Ends"), validators=[InputRequired()])
    kind = SelectField(_l("Kind"), choices=list(MEETING_KIND_LABELS.items()), default="lecture")
    submit = SubmitField(_l("Save meeting"))


class ImportForm(FlaskForm):
    kind = SelectField(
        _l("What the file holds"),
        choices=[(name, kind.label) for name, kind in KINDS.items()],
        validators=[DataRequired()],
    )
    file = FileField(
        _l("CSV file"),
        validators=[FileRequired(_l("Choose a CSV file to upload."))],
        description=_l(
            "Comma- or semicolon-separated, with a header line; UTF-8 preferred. "
            "Up to 100,000 rows."
        ),
        render_kw={"accept": ".csv,.txt,text/csv"},
    )
    submit = SubmitField(_l("Upload and check"))
