"""A person's language travels with their account: chosen on a device, it reaches the campus
server at the next sync, and from there the person's other copies; nothing else of an account
is a device's to change."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from flask import Flask

from portal.extensions import db as _db
from portal.models import User
from portal.profile import services as profile
from tests.sync.conftest import Campus, Device
from tests.sync.test_invariants import acting, change, on_server, push_raw


def _language_on_server(server: Flask, user_id: uuid.UUID) -> str | None:
    with on_server(server):
        return _db.session.get(User, user_id).language  # type: ignore[union-attr]


def test_a_language_chosen_on_a_device_reaches_the_server_and_other_devices(
    campus: Campus, make_device: Callable[..., Device], server: Flask
) -> None:
    me = campus.students[0]
    laptop, lab_pc = make_device("stud1"), make_device("stud1")
    with acting(laptop, me) as db:
        profile.set_language(db, db.get(User, me), "ar")
        db.commit()
    summary = laptop.sync()
    assert _language_on_server(server, me) == "ar", summary
    lab_pc.sync()  # another copy of the same account takes it with its next pull
    with lab_pc.session():
        assert _db.session.get(User, me).language == "ar"  # type: ignore[union-attr]


def test_a_device_changes_only_its_own_persons_language(
    campus: Campus, newcomer_laptop: Device, server: Flask
) -> None:
    me, someone_else = campus.students[2], campus.students[0]
    answers = push_raw(
        newcomer_laptop,
        [
            change("users", me, {"language": "fr"}, actor=me, op="update"),
            change("users", someone_else, {"language": "fr"}, actor=me, op="update"),
            change("users", me, {"language": "fr", "full_name": "Forged"}, actor=me, op="update"),
            change("users", me, {"language": "xx"}, actor=me, op="update"),
        ],
    )
    assert [a["status"] for a in answers] == ["applied", "refused", "refused", "refused"]
    assert answers[2]["detail"] == "Accounts are changed on the campus server only."
    assert _language_on_server(server, me) == "fr"
    assert _language_on_server(server, someone_else) is None
