"""What services share about writing rows, and nothing of the web: no Flask here, so every
service may import it."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.errors import PortalError


def flush_unique(db: Session, refused: Callable[[], PortalError]) -> None:
    """Flushes in a savepoint; when a unique key is already taken (the same was done by another
    request at the same moment), raises `refused()`, the error for the person, and the rest of
    the transaction stays usable."""
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError:
        raise refused() from None
