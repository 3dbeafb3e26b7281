from flask_wtf import FlaskForm
from wtforms import DateField, StringField, SubmitField, TimeField
from wtforms.validators import DataRequired, Length, Optional


class LabSessionForm(FlaskForm):
    held_on = DateField("Date", validators=[DataRequired()])
    starts_at = TimeField("Starts", validators=[DataRequired()])
    ends_at = TimeField("Ends", validators=[DataRequired()])
    room = StringField(
        "Room",
        validators=[Optional(), Length(max=50)],
        description="Leave empty for the section's usual room.",
    )
    submit = SubmitField("Add lab session")
