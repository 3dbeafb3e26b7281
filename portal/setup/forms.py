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
