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


class Busy(PortalError):
    """Another change holds the rows this one needs for longer than a change may wait (the
    database's lock timeout): nothing was saved, and trying again in a moment will do."""

    status_code = 503
    retry_after = 5  # seconds, for the Retry-After header

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message
            or "Someone else is saving a change to the same records right now, so yours was "
            "not saved. Nothing was lost: try again in a few seconds."
        )
