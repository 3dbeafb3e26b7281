"""The routes' shared helper: commit and redirect, or roll back and show the domain error."""

from __future__ import annotations

import pytest
from flask import get_flashed_messages
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import StringField

from portal.errors import Forbidden, NotFound, ValidationError
from portal.extensions import db as _db
from portal.models import AuditEntry
from portal.web import Undo, attempt, commit_or_show, offer_undo, take_undo_offers


class NameForm(FlaskForm):
    name = StringField("Name")


def _entries() -> int:
    return _db.session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def _add_entry(then_raise: Exception | None = None) -> AuditEntry:
    entry = AuditEntry(action="test.change")
    _db.session.add(entry)
    _db.session.flush()
    if then_raise is not None:
        raise then_raise
    return entry


def test_success_commits_flashes_and_redirects(app):
    with app.test_request_context("/", method="POST"):
        response = commit_or_show(
            _add_entry,
            message=lambda entry: (f"Saved {entry.action}.", "info"),
            redirect_to=lambda entry: f"/entries/{entry.id}",
            on_error_to="/entries",
        )
        assert response.status_code == 302
        assert response.location.startswith("/entries/")
        assert get_flashed_messages(with_categories=True) == [("info", "Saved test.change.")]
        _db.session.remove()
        assert _entries() == 1  # committed: a new session sees it


def test_a_domain_error_is_rolled_back_and_flashed(app):
    with app.test_request_context("/", method="POST"):
        response = commit_or_show(
            lambda: _add_entry(ValidationError("Not like that.")),
            message="never shown",
            redirect_to="/done",
            on_error_to="/again",
            code=303,
        )
        assert (response.status_code, response.location) == (303, "/again")
        assert get_flashed_messages(with_categories=True) == [("danger", "Not like that.")]
        assert _entries() == 0


def test_a_domain_error_is_shown_on_the_form_field_it_names(app):
    class FieldProblem(ValidationError):
        errors = {"name": "Names are short.", "elsewhere": "Something else."}

    with app.test_request_context("/", method="POST", data={"name": "x"}):
        form = NameForm(meta={"csrf": False})
        response = commit_or_show(
            lambda: _add_entry(FieldProblem("both")),
            message="never shown",
            redirect_to="/done",
            form=form,
        )
        assert response is None
        assert form.name.errors == ["Names are short."]
        assert form.form_errors == ["Something else."]
        assert get_flashed_messages() == []
        assert _entries() == 0


@pytest.mark.parametrize("error", [NotFound("gone"), Forbidden("not yours")])
def test_not_found_and_forbidden_go_on_to_the_error_pages(app, error):
    with app.test_request_context("/", method="POST"), pytest.raises(type(error)):
        attempt(lambda: _add_entry(error))


def test_without_a_form_a_computed_redirect_needs_a_place_for_errors(app):
    with app.test_request_context("/", method="POST"), pytest.raises(TypeError):
        commit_or_show(_add_entry, message="x", redirect_to=lambda entry: "/x")


def test_an_undo_offer_goes_with_its_message_and_no_further(app):
    with app.test_request_context("/", method="POST"):
        commit_or_show(
            _add_entry,
            message="Removed.",
            redirect_to="/entries",
            undo=lambda entry: Undo(f"/entries/{entry.id}/restore", {"undo": "1"}),
        )
        messages = get_flashed_messages(with_categories=True)
        offers = take_undo_offers(messages)
        assert list(offers) == ["Removed."]
        assert offers["Removed."].action.endswith("/restore")
        assert offers["Removed."].fields == {"undo": "1"}
        assert take_undo_offers(messages) == {}  # taken once

        offer_undo("Archived.", Undo("/restore"))
        assert take_undo_offers([("success", "Something else.")]) == {}
        assert take_undo_offers([("success", "Archived.")]) == {}  # dropped, not kept for later
