"""The audit log page: who did what and when, with the values before and after."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, render_template, request

from portal.audit import services
from portal.auth.policy import roles
from portal.web import db_session, one_page

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")


def _day(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name, "").strip())
    except ValueError:
        return None


@bp.get("/")
@roles("admin")
def log() -> str:
    since, until = _day("since"), _day("until")
    filters = services.AuditFilter(
        action=request.args.get("action", "")[:64],
        actor=request.args.get("actor", "")[:64],
        entity_type=request.args.get("entity_type", "")[:64],
        since=datetime.combine(since, time.min, tzinfo=UTC) if since else None,
        # The "to" day is included: entries before the start of the next day.
        until=datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC) if until else None,
    )
    page = one_page(services.search_query(filters))
    return render_template(
        "audit/log.html",
        page=page,
        filters=filters,
        since=since,
        until=until,
        bad_dates=[n for n in ("since", "until") if request.args.get(n) and not _day(n)],
        actions=services.known_actions(db_session()),
        entity_types=services.known_entity_types(db_session()),
        changes=services.changes,
        names=services.names_for(db_session(), page.items),
    )
