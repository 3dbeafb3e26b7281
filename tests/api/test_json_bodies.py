"""The API's JSON bodies (orjson): the same values as Flask's own encoder gives, as UTF-8."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid

from flask.json.provider import DefaultJSONProvider

from portal.extensions import db as _db
from portal.models import User


def test_an_answer_means_what_flasks_encoder_says_and_is_sent_as_utf8(app, api_as, world):
    with app.app_context():
        student = _db.session.get(User, world.users["student"])
        student.full_name = "Zoë Ødegård-Núñez 王"
        _db.session.commit()
    response = api_as("student").get("/api/v1/me")
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_data()
    assert "Zoë Ødegård-Núñez 王".encode() in body  # not \u escapes
    assert body.endswith(b"\n")
    value = json.loads(body)
    assert value["full_name"] == "Zoë Ødegård-Núñez 王"
    with app.test_request_context():
        flasks = DefaultJSONProvider(app).response(value).get_data()
    assert json.loads(flasks) == value
    assert list(value) == sorted(value)  # keys sorted, as Flask sorts them


def test_values_json_cannot_hold_go_through_flasks_conversions(app):
    moment = datetime.datetime(2026, 12, 7, 14, 5, tzinfo=datetime.UTC)
    values = {
        "b": [uuid.UUID(int=7), decimal.Decimal("2.50")],
        "a": {"when": moment, "day": datetime.date(2026, 12, 7)},
        "big": 2**70,  # past 64 bits: Flask's encoder answers
    }
    with app.test_request_context():
        ours = app.json.response(values).get_data()
        flasks = DefaultJSONProvider(app).response(values).get_data()
    assert json.loads(ours) == json.loads(flasks)
    assert json.loads(ours)["a"]["when"] == "Mon, 07 Dec 2026 14:05:00 GMT"
