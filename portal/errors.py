"""Domain errors: raised by services with a message a person can read."""


class PortalError(Exception):
    """Base of every rule violation; `str(error)` is shown to the user."""

    status_code = 400


class NotFound(PortalError):
    status_code = 404


class Forbidden(PortalError):
    status_code = 403


class RegistrationError(PortalError):
    """A registration, drop or waitlist request was refused by a rule."""

    status_code = 409


class ValidationError(PortalError):
    status_code = 422


class FieldErrors(ValidationError):
    """Several problems, each belonging to one form field (key: the field's name), reported
    together so that a form shows them all at once."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__(" ".join(self.errors.values()))
