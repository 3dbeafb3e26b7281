"""A portal of the browser tests' own: a fresh SQLite file in `folder`, migrated, with a log-in
rate limit no walk-through reaches (tests/browser/test_sync.py, test_campus_sign_in.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from flask_migrate import upgrade

from portal import create_app
from portal.extensions import db


def sqlite_portal(folder: Path, **settings: Any) -> Flask:
    folder.mkdir(parents=True)
    app = create_app(
        {
            "DATA_DIR": str(folder / "data"),
            "DATABASE_URL": f"sqlite:///{folder / 'portal.db'}",
            "SECRET_KEY": "browser-test-secret-key",
            "LOGIN_RATE_LIMIT": "10000 per minute",
            **settings,
        }
    )
    with app.app_context():
        upgrade()
        db.session.remove()
    return app
