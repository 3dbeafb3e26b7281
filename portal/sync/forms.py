"""Forms of the sync pages: an enrolment code for a device, a device's name."""

from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField, SubmitField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange


class EnrolmentCodeForm(FlaskForm):
    username = StringField(
        "Account the device is for",
        validators=[DataRequired(), Length(max=64)],
        description="The username of the person who will use the device first.",
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    valid_days = IntegerField(
        "Valid for (days)",
        default=7,
        # InputRequired, not DataRequired: 0 is a number (out of range), not a missing one.
        validators=[
            InputRequired("Say for how many days the code is valid (1 to 90)."),
            NumberRange(min=1, max=90, message="A code is valid for 1 to 90 days."),
        ],
        description="1 to 90 days. The code works once.",
    )
    submit = SubmitField("Create an enrolment code")


class DeviceNameForm(FlaskForm):
    name = StringField(
        "Device name",
        validators=[DataRequired(message="Give the device a name."), Length(max=200)],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    submit = SubmitField("Rename")
