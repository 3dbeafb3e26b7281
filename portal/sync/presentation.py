"""Words for what sync records: conflict kinds, tables and values as people read them."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal.models import CONFLICT_KINDS
from portal.sync.tables import SYNCED_TABLES

KIND_LABELS: dict[str, str] = {
    "superseded": _l("Lost to a newer edit"),
    "overwritten": _l("Replaced an older edit"),
    "refused": _l("Refused by the server's rules"),
    "deleted": _l("Edit of a deleted record"),
}
assert set(KIND_LABELS) == set(CONFLICT_KINDS), "every conflict kind needs its words"

# The tables as people name them ("Mark"), from their declarations (tables.py).
TABLE_LABELS: dict[str, str] = {entry.name: entry.label for entry in SYNCED_TABLES}


def value_text(value: Any) -> str:
    """A kept or lost value as a short text: a change's fields one per pair."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    if isinstance(value, dict):
        shown = [
            f"{name.replace('_', ' ')}: {value_text(item)}"
            for name, item in value.items()
            if not name.endswith("_id") and name != "id"
        ]
        return "; ".join(shown) or "—"
    if isinstance(value, list):
        return ", ".join(value_text(item) for item in value) or "—"
    return str(value)
