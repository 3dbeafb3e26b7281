from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from flask_wtf import FlaskForm
from wtforms import EmailField, StringField, SubmitField
from wtforms.validators import DataRequired, Optional

from portal.accounts.forms import (
    USERNAME_VALIDATORS,
    limit,
    new_password_field,
    repeat_password_field,
)
from portal.accounts.services import MIN_PASSWORD_LENGTH
from portal.validators import length


class FirstAdminForm(FlaskForm):
    full_name = StringField(
        _l("Your full name"),
        validators=[DataRequired(), limit("full_name")],
        render_kw={"autocomplete": "name", "autofocus": True},
    )
    username = StringField(
        _l("Username"), validators=USERNAME_VALIDATORS, render_kw={"autocomplete": "username"}
    )
    email = EmailField(_l("Email"), validators=[Optional(), limit("email")])
    password = new_password_field(
        _l("Password"),
        description=lazy_ngettext(
            "At least %(num)d character.", "At least %(num)d characters.", MIN_PASSWORD_LENGTH
        ),
    )
    confirm = repeat_password_field(_l("Repeat the password"))
    submit = SubmitField(_l("Create the administrator"))


class ConnectForm(FlaskForm):
    server_url = StringField(
        _l("Campus server address"),
        validators=[DataRequired(), length(max=500)],
        description=_l("For example https://portal.campus.example (IT can preset it)."),
        render_kw={"autocomplete": "url", "inputmode": "url", "spellcheck": "false"},
    )
    code = StringField(
        _l("Enrolment code"),
        validators=[DataRequired(), length(max=64)],
        description=_l("The code an administrator created for you under Devices."),
        render_kw={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"},
    )
    device_name = StringField(
        _l("Name of this copy"),
        validators=[Optional(), length(max=200)],
        description=_l(
            "How the campus server's Devices page will name it (an administrator can change it)."
        ),
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    submit = SubmitField(_l("Connect"))
