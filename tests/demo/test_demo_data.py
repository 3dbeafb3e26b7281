from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.accounts.services import authenticate
from portal.demo import services
from portal.errors import ValidationError
from portal.models import Course, Registration, Section, User, utcnow


def _fingerprint(db):
    return (
        db.scalars(select(User.username).order_by(User.username)).all(),
        db.scalars(select(Course.title).order_by(Course.code)).all(),
        db.execute(select(Section.capacity, Section.enrolled_count).order_by(Section.id)).all(),
    )


def test_small_demo_has_the_documented_accounts(db):
    counts = services.generate(db, "small", seed=1)
    for username in services.DEMO_ACCOUNTS:
        assert authenticate(db, username, services.DEMO_PASSWORD, now=utcnow()) is not None
    assert counts["registrations"] == services.SIZES["small"].registrations


def test_demo_data_is_deterministic_for_a_seed(app, tmp_path):
    from tests.conftest import make_app

    other = make_app(tmp_path / "other", f"sqlite:///{tmp_path / 'other.db'}")
    prints = []
    for application in (app, other):
        with application.app_context():
            from portal.extensions import db

            services.generate(db.session, "small", seed=7)
            prints.append(_fingerprint(db.session))
    assert prints[0] == prints[1]


def test_section_counters_match_registrations(db):
    services.generate(db, "small", seed=3)
    for section in db.scalars(select(Section)):
        enrolled = db.scalar(
            select(func.count())
            .select_from(Registration)
            .where(Registration.section_id == section.id, Registration.status == "enrolled")
        )
        assert enrolled == section.enrolled_count <= section.capacity


def test_demo_data_refuses_to_load_twice(db):
    services.generate(db, "small")
    with pytest.raises(ValidationError, match="already holds demo data"):
        services.generate(db, "small")
