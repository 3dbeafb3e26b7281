from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, FloatField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from portal.grading.scale import GRADE_POINTS
from portal.models import ASSESSMENT_KIND_LABELS

KIND_CHOICES = list(ASSESSMENT_KIND_LABELS.items())


class AssessmentForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    kind = SelectField("Kind", choices=KIND_CHOICES, validators=[DataRequired()])
    weight = FloatField(
        "Weight (%)",
        validators=[DataRequired(), NumberRange(min=0, max=100)],
        description="Share of the course grade. All weights must add up to 100%.",
        render_kw={"inputmode": "decimal"},
    )
    max_points = FloatField(
        "Maximum points",
        validators=[DataRequired(), NumberRange(min=0.01)],
        render_kw={"inputmode": "decimal"},
    )
    due_at = DateTimeLocalField(
        "Due (UTC)",
        format="%Y-%m-%dT%H:%M",
        validators=[Optional()],
        description="Optional. Lab reports uploaded after this time are marked late.",
    )
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
