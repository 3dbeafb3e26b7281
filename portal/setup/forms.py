from flask_wtf import FlaskForm
from wtforms import EmailField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, Optional

from portal.accounts.forms import (
    USERNAME_VALIDATORS,
    limit,
    new_password_field,
    repeat_password_field,
)
from portal.accounts.services import MIN_PASSWORD_LENGTH


class FirstAdminForm(FlaskForm):
    full_name = StringField(
        "Your full name",
        validators=[DataRequired(), limit("full_name")],
        render_kw={"autocomplete": "name", "autofocus": True},
    )
    username = StringField(
        "Username", validators=USERNAME_VALIDATORS, render_kw={"autocomplete": "username"}
    )
    email = EmailField("Email", validators=[Optional(), limit("email")])
    password = new_password_field(
        "Password", description=f"At least {MIN_PASSWORD_LENGTH} characters."
    )
    confirm = repeat_password_field("Repeat the password")
    submit = SubmitField("Create the administrator")


class ConnectForm(FlaskForm):
    server_url = StringField(
        "Campus server address",
        validators=[DataRequired(), Length(max=500)],
        description="For example https://portal.campus.example (IT can preset it).",
        render_kw={"autocomplete": "url", "inputmode": "url", "spellcheck": "false"},
    )
    code = StringField(
        "Enrolment code",
        validators=[DataRequired(), Length(max=64)],
        description="The code an administrator created for you under Devices.",
        render_kw={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"},
    )
    device_name = StringField(
        "Name of this copy",
        validators=[Optional(), Length(max=200)],
        description="How the campus server's Devices page will name it (an administrator can "
        "change it).",
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    submit = SubmitField("Connect")
