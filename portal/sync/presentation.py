"""Words for what sync records: conflict kinds, tables and values as people read them."""

from __future__ import annotations

from typing import Any

from portal.models import CONFLICT_KINDS
from portal.sync.tables import SYNCED_TABLES

KIND_LABELS: dict[str, str] = {
    "superseded": "Lost to a newer edit",
    "overwritten": "Replaced an older edit",
    "refused": "Refused by the server's rules",
    "deleted": "Edit of a deleted record",
}
assert set(KIND_LABELS) == set(CONFLICT_KINDS), "every conflict kind needs its words"

TABLE_LABELS: dict[str, str] = {entry.name: entry.label for entry in SYNCED_TABLES}


def value_text(value: Any) -> str:
    """A kept or lost value as a short text: a change's fields one per pair."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
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
