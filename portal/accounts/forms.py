from flask_babel import lazy_gettext as _l
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
from portal.validators import length

ROLE_CHOICES = list(ROLE_LABELS.items())


def limit(field: str) -> Length:
    """The length check of an account field, from the accounts service's limits."""
    return length(max=USER_FIELD_MAX_LENGTH[field])


# The same rule as accounts.services.USERNAME_PATTERN, checked early so errors show by the field.
USERNAME_VALIDATORS = [
    DataRequired(),
    length(min=USERNAME_MIN_LENGTH, max=USER_FIELD_MAX_LENGTH["username"]),
    Regexp(
        r"^[a-z0-9][a-z0-9._-]*$", message=_l("Use lower-case letters, digits, '.', '_' or '-'.")
    ),
]


def new_password_field(label: str, **options: object) -> PasswordField:
    return PasswordField(
        label,
        validators=[DataRequired(), length(min=MIN_PASSWORD_LENGTH, max=MAX_PASSWORD_LENGTH)],
        render_kw={"autocomplete": "new-password"},
        **options,
    )


def repeat_password_field(label: str) -> PasswordField:
    return PasswordField(
        label,
        validators=[DataRequired(), EqualTo("password", message=_l("The passwords do not match."))],
        render_kw={"autocomplete": "new-password"},
    )


class UserForm(FlaskForm):
    username = StringField(_l("Username"), validators=USERNAME_VALIDATORS)
    full_name = StringField(_l("Full name"), validators=[DataRequired(), limit("full_name")])
    email = EmailField(_l("Email"), validators=[Optional(), limit("email")])
    role = SelectField(_l("Role"), choices=ROLE_CHOICES, validators=[DataRequired()])
    student_number = StringField(
        _l("Student number"),
        validators=[Optional(), limit("student_number")],
        description=_l("Required for students."),
    )
    submit = SubmitField(_l("Save"))


class NewUserForm(UserForm):
    password = new_password_field(_l("Initial password"))


class PasswordResetForm(FlaskForm):
    password = new_password_field(_l("New password"))
    confirm = repeat_password_field(_l("Repeat the new password"))
    submit = SubmitField(_l("Set password"))
