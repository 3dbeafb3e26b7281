from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from portal.languages import LANGUAGES

EXPIRY_CHOICES = [("30", "30 days"), ("90", "90 days"), ("365", "1 year"), ("never", "Never")]


class TokenForm(FlaskForm):
    name = StringField(
        "Token name",
        validators=[DataRequired(), Length(max=100)],
        description="What will use it, e.g. “grade export script”.",
    )
    expires = SelectField("Expires after", choices=EXPIRY_CHOICES, default="90")
    submit = SubmitField("Make token")


class LanguageForm(FlaskForm):
    """The person's language; each offered by its own name (English, العربية, Français)."""

    language = SelectField(
        _l("Language"),
        choices=[("", _l("As my browser asks"))] + list(LANGUAGES.items()),
        default="",
        description=_l("The language of the portal's pages for you, on every computer."),
    )
    submit_language = SubmitField(_l("Save language"))
