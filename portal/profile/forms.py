from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, SubmitField
from wtforms.validators import DataRequired

from portal.languages import LANGUAGES
from portal.validators import length

EXPIRY_CHOICES = [
    ("30", _l("30 days")),
    ("90", _l("90 days")),
    ("365", _l("1 year")),
    ("never", _l("Never")),
]


class TokenForm(FlaskForm):
    name = StringField(
        _l("Token name"),
        validators=[DataRequired(), length(max=100)],
        description=_l("What will use it, e.g. “grade export script”."),
    )
    expires = SelectField(_l("Expires after"), choices=EXPIRY_CHOICES, default="90")
    submit = SubmitField(_l("Make token"))


class LanguageForm(FlaskForm):
    """The person's language; each offered by its own name (English, العربية, Français)."""

    language = SelectField(
        _l("Language"),
        choices=[("", _l("As my browser asks"))] + list(LANGUAGES.items()),
        default="",
        description=_l("The language of the portal's pages for you, on every computer."),
    )
    submit_language = SubmitField(_l("Save language"))
