"""Forms of the sync pages: an enrolment code for a device, a device's name, a revoked copy's
new code, a sign-in on a copy through the server, a copy's offline PIN."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, InputRequired, NumberRange

from portal.auth.forms import UsernameForm
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


class EnrolAgainForm(FlaskForm):
    """A revoked copy's new enrolment code, for one of its accounts."""

    code = StringField(
        _l("New enrolment code"),
        validators=[DataRequired(message=_l("Type the enrolment code.")), length(max=64)],
        description=_l(
            "An administrator creates it under Devices on the campus server, for one of the "
            "accounts that use this computer."
        ),
        render_kw={
            "autocomplete": "off",
            "spellcheck": "false",
            "autocapitalize": "characters",
            "autofocus": True,
        },
    )
    submit = SubmitField(_l("Enrol again"))


class ConfirmSignInForm(FlaskForm):
    """The server's page that confirms a sign-in on a copy (the copy's own computer, or the
    code it shows)."""

    user_code = HiddenField()
    confirm = SubmitField(_l("Sign in on this computer"))
    cancel = SubmitField(_l("Cancel"))


class UserCodeForm(FlaskForm):
    user_code = StringField(
        _l("Code"),
        validators=[DataRequired(message=_l("Type the code Campus Portal shows.")), length(max=20)],
        description=_l("The code Campus Portal shows on the computer, e.g. BCDF-GHJK."),
        render_kw={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"},
    )
    submit = SubmitField(_l("Continue"))


class OfflinePinForm(FlaskForm):
    """A person of single sign-on chooses the PIN they sign in with offline on a copy."""

    pin = PasswordField(
        _l("Offline PIN"),
        validators=[DataRequired(message=_l("Choose a PIN.")), length(max=64)],
        description=_l("At least 6 digits, not all the same digit."),
        render_kw={"autocomplete": "new-password", "inputmode": "numeric"},
    )
    confirm = PasswordField(
        _l("Repeat the PIN"),
        validators=[
            DataRequired(message=_l("Repeat the PIN.")),
            EqualTo("pin", message=_l("The two PINs do not match.")),
        ],
        render_kw={"autocomplete": "new-password", "inputmode": "numeric"},
    )
    submit = SubmitField(_l("Save the PIN"))


class PinLoginForm(UsernameForm):
    pin = PasswordField(
        _l("Offline PIN"),
        validators=[DataRequired(), length(max=64)],
        render_kw={"autocomplete": "current-password", "inputmode": "numeric"},
    )
    submit = SubmitField(_l("Sign in with the PIN"))
