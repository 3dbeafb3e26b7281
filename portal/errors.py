"""Domain errors: raised by services with a message a person can read."""

from __future__ import annotations

from flask_babel import gettext as _


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


class OfflineSignInExpired(PortalError):
    """A campus account's offline sign-in on a desktop copy is too long after its last online
    one."""

    status_code = 401


class ValidationError(PortalError):
    status_code = 422


class FormTooLarge(ValidationError):
    """A form or upload refused by one of its limits; the message says which one."""

    status_code = 413


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0")


class FileTooLarge(FormTooLarge):
    @classmethod
    def over(cls, max_bytes: int, filename: str | None = None) -> FileTooLarge:
        if filename:
            return cls(
                _(
                    "“%(filename)s” is larger than the %(limit)s MB limit for a file. Make it "
                    "smaller (for example export a compressed PDF) and upload it again.",
                    filename=filename,
                    limit=megabytes(max_bytes),
                )
            )
        return cls(
            _(
                "The file is larger than the %(limit)s MB limit for a file. Make it smaller (for "
                "example export a compressed PDF) and upload it again.",
                limit=megabytes(max_bytes),
            )
        )


class FieldsTooLarge(FormTooLarge):
    pass


class TooManyParts(FormTooLarge):
    pass


class FieldErrors(ValidationError):
    """Several problems found together, each belonging to one form field (key: the field's
    name), so that a form shows all of them at once."""

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
            or _(
                "Someone else is saving a change to the same records right now, so yours was "
                "not saved. Nothing was lost: try again in a few seconds."
            )
        )
