from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp

from portal.accounts.services import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    USER_FIELD_MAX_LENGTH,
    USERNAME_MIN_LENGTH,
)
from portal.models import ROLE_LABELS

ROLE_CHOICES = list(ROLE_LABELS.items())


def limit(field: str) -> Length:
    """The length check of an account field, from the accounts service's limits."""
    return Length(max=USER_FIELD_MAX_LENGTH[field])


# The same rule as accounts.services.USERNAME_PATTERN, checked early so errors show by the field.
USERNAME_VALIDATORS = [
    DataRequired(),
    Length(min=USERNAME_MIN_LENGTH, max=USER_FIELD_MAX_LENGTH["username"]),
    Regexp(r"^[a-z0-9][a-z0-9._-]*$", message="Use lower-case letters, digits, '.', '_' or '-'."),
]


def new_password_field(label: str, **options: object) -> PasswordField:
    return PasswordField(
        label,
        validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=MAX_PASSWORD_LENGTH)],
        render_kw={"autocomplete": "new-password"},
        **options,
    )


def repeat_password_field(label: str) -> PasswordField:
    return PasswordField(
        label,
        validators=[DataRequired(), EqualTo("password", message="The passwords do not match.")],
        render_kw={"autocomplete": "new-password"},
    )


class UserForm(FlaskForm):
    username = StringField("Username", validators=USERNAME_VALIDATORS)
    full_name = StringField("Full name", validators=[DataRequired(), limit("full_name")])
    email = EmailField("Email", validators=[Optional(), limit("email")])
    role = SelectField("Role", choices=ROLE_CHOICES, validators=[DataRequired()])
    student_number = StringField(
        "Student number",
        validators=[Optional(), limit("student_number")],
        description="Required for students.",
    )
    submit = SubmitField("Save")


class NewUserForm(UserForm):
    password = new_password_field("Initial password")


class PasswordResetForm(FlaskForm):
    password = new_password_field("New password")
    confirm = repeat_password_field("Repeat the new password")
    submit = SubmitField("Set password")
