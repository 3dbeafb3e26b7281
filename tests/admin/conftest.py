"""Fixtures of the admin tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from portal.extensions import db as _db


@pytest.fixture
def data(app: Flask) -> Callable[[], AbstractContextManager[Session]]:
    """`with data() as db:` a session in its own app context, committed at the end.

    Tests that also send requests use this instead of the `db` fixture: a request handled
    inside the `db` fixture's app context would keep that session's SQLite write lock open.
    """

    @contextmanager
    def block() -> Iterator[Any]:
        with app.app_context():
            try:
                yield _db.session
                _db.session.commit()
            finally:
                _db.session.remove()

    return block
