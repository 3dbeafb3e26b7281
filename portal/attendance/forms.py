from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, StringField, SubmitField, TimeField
from wtforms.validators import DataRequired, Optional

from portal.validators import length


class LabSessionForm(FlaskForm):
    held_on = DateField(_l("Date"), validators=[DataRequired()])
    starts_at = TimeField(_l("Starts"), validators=[DataRequired()])
    ends_at = TimeField(_l("Ends"), validators=[DataRequired()])
    room = StringField(
        _l("Room"),
        validators=[Optional(), length(max=50)],
        description=_l("Leave empty for the section's usual room."),
    )
    submit = SubmitField(_l("Add lab session"))
