"""The device's accounts that left its scope: removed, or kept deactivated without a password
verifier where rows of the device still name them (after a snapshot, a discard, or the server's
refusal of a device none of whose accounts is active any more)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    delete,
    exists,
    false,
    not_,
    or_,
    update,
)

from portal.sync.tables import BY_NAME

log = logging.getLogger(__name__)

NO_VERIFIER = "!"  # noqa: S105 - the password_hash of an account that cannot sign in here


def remove(connection: Connection, condition: ColumnElement[bool]) -> None:
    """Remove the accounts that meet `condition` (they left the device's scope: deactivated
    or removed on the server, or no longer on this device). Those that rows of this device
    still name (its audit entries: who did what here) are kept, deactivated and without a
    password verifier: removing them would break those rows. Either way such an account can
    no longer sign in here."""
    table = BY_NAME["users"].table
    named = _named_account()
    _deactivate(connection, and_(condition, named))
    connection.execute(delete(table).where(condition, not_(named)))


def _deactivate(connection: Connection, condition: ColumnElement[bool]) -> None:
    table = BY_NAME["users"].table
    connection.execute(
        update(table).where(condition).values(active=False, password_hash=NO_VERIFIER)
    )


def retire(engine: Engine, accounts: Iterable[str]) -> None:
    """The server refused to sync because none of this device's accounts is active any more
    (it names them): they are kept, deactivated and without a password verifier, so that
    nobody signs in with them here although the device can no longer sync. Their rows stay
    (nothing of the device's is removed without a sync)."""
    ids = []
    for account in accounts:
        try:
            ids.append(uuid.UUID(account))
        except ValueError:  # names no account of this device
            log.warning("sync: the server named a deactivated account by a bad id: %r", account)
    with engine.begin() as connection:
        _deactivate(connection, BY_NAME["users"].table.c.id.in_(ids))


def _named_account() -> ColumnElement[bool]:
    """The condition on the users table: a row of this device's database names the account."""
    users = BY_NAME["users"].table
    return or_(
        false(),
        *(
            exists().where(column == users.c.id)
            for table in users.metadata.sorted_tables
            for column in table.columns
            if any(key.column is users.c.id for key in column.foreign_keys)
        ),
    )
