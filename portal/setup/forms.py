from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, Optional

from portal.accounts.forms import USERNAME_VALIDATORS


class FirstAdminForm(FlaskForm):
    full_name = StringField(
        "Your full name",
        validators=[DataRequired(), Length(max=200)],
        render_kw={"autocomplete": "name", "autofocus": True},
    )
    username = StringField(
        "Username", validators=USERNAME_VALIDATORS, render_kw={"autocomplete": "username"}
    )
    email = EmailField("Email", validators=[Optional(), Length(max=254)])
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(min=8, max=1024)],
        description="At least 8 characters.",
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        "Repeat the password",
        validators=[DataRequired(), EqualTo("password", message="The passwords do not match.")],
        render_kw={"autocomplete": "new-password"},
    )
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
