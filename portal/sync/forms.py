"""Forms of the sync pages: an enrolment code for a device, a device's name."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField, SubmitField
from wtforms.validators import DataRequired, InputRequired, NumberRange

from portal.validators import length


class EnrolmentCodeForm(FlaskForm):
    username = StringField(
        _l("Account the device is for"),
        validators=[DataRequired(), length(max=64)],
        description=_l("The username of the person who will use the device first."),
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    valid_days = IntegerField(
        _l("Valid for (days)"),
        default=7,
        # InputRequired, not DataRequired: 0 is a number (out of range), not a missing one.
        validators=[
            InputRequired(_l("Say for how many days the code is valid (1 to 90).")),
            NumberRange(min=1, max=90, message=_l("A code is valid for 1 to 90 days.")),
        ],
        description=_l("1 to 90 days. The code works once."),
    )
    submit = SubmitField(_l("Create an enrolment code"))


class DeviceNameForm(FlaskForm):
    name = StringField(
        _l("Device name"),
        validators=[DataRequired(message=_l("Give the device a name.")), length(max=200)],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    submit = SubmitField(_l("Rename"))
