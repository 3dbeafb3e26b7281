from flask_wtf import FlaskForm
from wtforms import (
    DateTimeLocalField,
    Field,
    FloatField,
    HiddenField,
    SelectField,
    StringField,
    SubmitField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from portal.grading.scale import GRADE_POINTS
from portal.grading.services import MAX_POINTS
from portal.models import ASSESSMENT_KIND_LABELS

KIND_CHOICES = list(ASSESSMENT_KIND_LABELS.items())


def _more_than_zero(_form: FlaskForm, field: Field) -> None:
    if field.data is not None and field.data <= 0:
        raise ValidationError("The maximum points must be more than 0.")


class AssessmentForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    kind = SelectField("Kind", choices=KIND_CHOICES, validators=[DataRequired()])
    weight = FloatField(
        "Weight (%)",
        validators=[
            InputRequired(message="Give the weight (0 to 100)."),
            NumberRange(min=0, max=100, message="The weight must be between 0 and 100 percent."),
        ],
        description="Share of the course grade. All weights must add up to 100%.",
        render_kw={"inputmode": "decimal"},
    )
    max_points = FloatField(
        "Maximum points",
        validators=[
            InputRequired(message="Give the maximum points."),
            NumberRange(
                min=0,
                max=MAX_POINTS,
                message=f"The maximum points must be more than 0 and at most {MAX_POINTS:,}.",
            ),
            _more_than_zero,
        ],
        render_kw={"inputmode": "decimal"},
    )
    due_at = DateTimeLocalField(
        "Due (your local time)",
        format="%Y-%m-%dT%H:%M",
        validators=[Optional()],
        description="Optional. In this computer's time zone (stored in UTC); lab reports "
        "uploaded after it are marked late.",
    )
    # The browser's IANA time zone, filled in by static/js/portal.js; empty without JavaScript,
    # and the due time is then read (and shown in the field) as UTC.
    timezone = HiddenField(render_kw={"data-local-timezone": ""})
    submit = SubmitField("Save")


def scale_field_name(letter: str) -> str:
    return "min_" + letter.replace("+", "_plus").replace("-", "_minus")


class GradeScaleForm(FlaskForm):
    """One 'minimum %' input per letter; leave a letter empty to leave it out of the scale."""

    submit = SubmitField("Save grade scale")


for _letter in GRADE_POINTS:
    setattr(
        GradeScaleForm,
        scale_field_name(_letter),
        FloatField(
            f"{_letter} from (%)",
            validators=[Optional(), NumberRange(min=0, max=100)],
            render_kw={"inputmode": "decimal"},
        ),
    )
