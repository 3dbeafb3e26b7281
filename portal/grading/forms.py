from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateTimeLocalField,
    FloatField,
    HiddenField,
    SelectField,
    StringField,
    SubmitField,
)
from wtforms.validators import InputRequired, NumberRange, Optional

from portal.grading.scale import GRADE_POINTS
from portal.models import ASSESSMENT_KIND_LABELS

KIND_CHOICES = list(ASSESSMENT_KIND_LABELS.items())


class AssessmentForm(FlaskForm):
    """What the form checks itself is only that the numbers are numbers; the rules (a name of
    at most 200 characters, the weight's and the maximum's ranges, a free name, weights that
    fit) are the service's, and the page shows all of their messages at once."""

    name = StringField(_l("Name"))
    kind = SelectField(_l("Kind"), choices=KIND_CHOICES)
    weight = FloatField(
        _l("Weight (%)"),
        validators=[InputRequired(message=_l("Give the weight (0 to 100)."))],
        description=_l("Share of the course grade. All weights must add up to 100%."),
        render_kw={"inputmode": "decimal"},
    )
    max_points = FloatField(
        _l("Maximum points"),
        validators=[InputRequired(message=_l("Give the maximum points."))],
        render_kw={"inputmode": "decimal"},
    )
    due_at = DateTimeLocalField(
        _l("Due (your local time)"),
        format="%Y-%m-%dT%H:%M",
        validators=[Optional()],
        description=_l(
            "Optional. In this computer's time zone (stored in UTC); lab reports "
            "uploaded after it are marked late."
        ),
    )
    # The browser's IANA time zone, filled in by static/js/portal.js; empty without JavaScript,
    # and the due time is then read (and shown in the field) as UTC.
    timezone = HiddenField(render_kw={"data-local-timezone": ""})
    submit = SubmitField(_l("Save"))


def scale_field_name(letter: str) -> str:
    return "min_" + letter.replace("+", "_plus").replace("-", "_minus")


class GradeScaleForm(FlaskForm):
    """One 'minimum %' input per letter; leave a letter empty to leave it out of the scale."""

    submit = SubmitField(_l("Save grade scale"))


for _letter in GRADE_POINTS:
    setattr(
        GradeScaleForm,
        scale_field_name(_letter),
        FloatField(
            _l("%(letter)s from (%%)", letter=_letter),
            validators=[Optional(), NumberRange(min=0, max=100)],
            render_kw={"inputmode": "decimal"},
        ),
    )
