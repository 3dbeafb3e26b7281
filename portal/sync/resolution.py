"""The answer to a conflict's Apply or Dismiss button, one shape for the pages that show them:
the administrators' Conflicts, an instructor's section conflicts, an author's own."""

from __future__ import annotations

import uuid

from flask import request
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from portal.models import utcnow
from portal.sync import review
from portal.web import commit_or_show, db_session, signed_in_user

BACK_TO = ("/admin/sync/conflicts", "/sync/my-conflicts", "/sync/section-conflicts")


def resolve_response(conflict_id: uuid.UUID, *, default_back: str) -> Response:
    """Apply the author's value or dismiss, then back to the page the form was on (one of
    the conflict pages of this site)."""
    conflict = review.get_conflict(db_session(), conflict_id)
    apply_other = request.form.get("action") == "apply"
    back = request.form.get("back", "")
    if not back.startswith(BACK_TO):
        back = default_back
    return commit_or_show(
        lambda: review.resolve_conflict(
            db_session(),
            conflict,
            actor=signed_in_user(),
            apply_lost_value=apply_other,
            now=utcnow(),
            reason=request.form.get("reason", "")[:500],
        ),
        message=lambda view: (
            _(
                "%(entered)s is in place: %(what)s. The author's device shows it at its next sync.",
                entered=view.entered,
                what=view.what,
            )
            if apply_other
            else _(
                "Dismissed: %(what)s keeps %(in_place)s.", what=view.what, in_place=view.in_place
            )
        ),
        redirect_to=back,
    )
