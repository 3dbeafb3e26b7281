from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo

from portal.validators import length


class UsernameForm(FlaskForm):
    """A log-in form's first field, the username (with a password here, a PIN on a copy)."""

    username = StringField(
        _l("Username"),
        validators=[DataRequired(), length(max=64)],
        render_kw={"autocomplete": "username", "autofocus": True},
    )


class LoginForm(UsernameForm):
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(), length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()
    submit = SubmitField(_l("Log in"))


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(), length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    new_password = PasswordField(
        _l("New password"),
        validators=[DataRequired(), length(max=1024)],
        description=_l("At least 8 characters; not a common password, your username or your name."),
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        _l("Repeat the new password"),
        validators=[
            DataRequired(),
            EqualTo("new_password", message=_l("The two new passwords do not match.")),
        ],
        render_kw={"autocomplete": "new-password"},
    )
    submit = SubmitField(_l("Change password"))
