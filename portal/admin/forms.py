"""Admin forms: terms, courses, sections (with staff), meetings, and the CSV upload."""

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
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from portal.admin.csv_import import KINDS
from portal.admin.services import MEETING_KINDS
from portal.models import WEEKDAYS

DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


class TermForm(FlaskForm):
    code = StringField(
        "Code",
        validators=[DataRequired(), Length(max=20)],
        description="Short and unique, e.g. 2026-FA. Used in CSV files.",
    )
    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    starts_on = DateField("First day", validators=[InputRequired()])
    ends_on = DateField("Last day", validators=[InputRequired()])
    registration_opens_at = DateTimeLocalField(
        "Registration opens (UTC)", format=DATETIME_FORMAT, validators=[InputRequired()]
    )
    registration_closes_at = DateTimeLocalField(
        "Registration closes (UTC)", format=DATETIME_FORMAT, validators=[InputRequired()]
    )
    add_drop_deadline = DateTimeLocalField(
        "Add/drop deadline (UTC)", format=DATETIME_FORMAT, validators=[InputRequired()]
    )
    max_credits = IntegerField(
        "Credit limit per student",
        default=18,
        validators=[InputRequired(), NumberRange(min=1, max=60)],
    )
    submit = SubmitField("Save")


class CourseForm(FlaskForm):
    code = StringField(
        "Code", validators=[DataRequired(), Length(max=20)], description="Unique, e.g. CS101."
    )
    title = StringField("Title", validators=[DataRequired(), Length(max=200)])
    department = StringField(
        "Department",
        validators=[DataRequired(), Length(max=100)],
        render_kw={"list": "departments", "autocomplete": "off"},
    )
    credits = IntegerField("Credits", validators=[InputRequired(), NumberRange(min=0, max=30)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=5000)])
    submit = SubmitField("Save")


class SectionForm(FlaskForm):
    term_code = SelectField("Term", validators=[DataRequired()])
    course_code = StringField(
        "Course code",
        validators=[DataRequired(), Length(max=20)],
        description="An existing course, e.g. CS101.",
    )
    number = StringField(
        "Section number",
        validators=[DataRequired(), Length(max=10)],
        description="Unique within the course and term, e.g. 001.",
    )
    capacity = IntegerField("Seats", validators=[InputRequired(), NumberRange(min=0)])
    waitlist_capacity = IntegerField(
        "Waitlist places", default=0, validators=[InputRequired(), NumberRange(min=0)]
    )
    room = StringField("Room", validators=[Optional(), Length(max=50)])
    instructor_username = SelectField("Instructor", validate_choice=False)
    lab_staff_username = SelectField("Lab staff", validate_choice=False)
    submit = SubmitField("Save")


class MeetingForm(FlaskForm):
    weekday = SelectField(
        "Day",
        choices=[(str(i), day) for i, day in enumerate(WEEKDAYS)],
        validators=[InputRequired()],
    )
    starts_at = TimeField("Starts", validators=[InputRequired()])
    ends_at = TimeField("Ends", validators=[InputRequired()])
    kind = SelectField(
        "Kind", choices=[(kind, kind.capitalize()) for kind in MEETING_KINDS], default="lecture"
    )
    submit = SubmitField("Save meeting")


class ImportForm(FlaskForm):
    kind = SelectField(
        "What the file holds",
        choices=[(name, kind.label) for name, kind in KINDS.items()],
        validators=[DataRequired()],
    )
    file = FileField(
        "CSV file",
        validators=[FileRequired("Choose a CSV file to upload.")],
        description="Comma- or semicolon-separated, with a header line; UTF-8 preferred. "
        "Up to 100,000 rows.",
        render_kw={"accept": ".csv,.txt,text/csv"},
    )
    submit = SubmitField("Upload and check")
