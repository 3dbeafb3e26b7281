from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp

from portal.models import ROLE_LABELS

ROLE_CHOICES = list(ROLE_LABELS.items())

# The same rule as accounts.services.USERNAME_PATTERN, checked early so errors show by the field.
USERNAME_VALIDATORS = [
    DataRequired(),
    Length(min=2, max=64),
    Regexp(r"^[a-z0-9][a-z0-9._-]*$", message="Use lower-case letters, digits, '.', '_' or '-'."),
]


class UserForm(FlaskForm):
    username = StringField("Username", validators=USERNAME_VALIDATORS)
    full_name = StringField("Full name", validators=[DataRequired(), Length(max=200)])
    email = EmailField("Email", validators=[Optional(), Length(max=254)])
    role = SelectField("Role", choices=ROLE_CHOICES, validators=[DataRequired()])
    student_number = StringField(
        "Student number",
        validators=[Optional(), Length(max=20)],
        description="Required for students.",
    )
    submit = SubmitField("Save")


class NewUserForm(UserForm):
    password = PasswordField(
        "Initial password",
        validators=[DataRequired(), Length(min=8, max=1024)],
        render_kw={"autocomplete": "new-password"},
    )


class PasswordResetForm(FlaskForm):
    password = PasswordField(
        "New password",
        validators=[DataRequired(), Length(min=8, max=1024)],
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("password", message="The passwords do not match.")],
        render_kw={"autocomplete": "new-password"},
    )
    submit = SubmitField("Set password")
