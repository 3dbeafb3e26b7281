"""The declaration of synced tables is whole: every table has its words and, for every role, a
scope rule (a table without one would fail only when a device of that role pulls)."""

from __future__ import annotations

import pytest

from portal.models import ROLES
from portal.sync import scopes
from portal.sync.presentation import TABLE_LABELS
from portal.sync.tables import SYNCED_TABLES

NAMES = [entry.name for entry in SYNCED_TABLES]


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_a_scope_rule_for_every_synced_table(role: str) -> None:
    rules = scopes.RULES.get(role, {})
    missing = [name for name in NAMES if name not in rules]
    assert not missing, f"no scope rule for {role} on {', '.join(missing)}"
    assert set(rules) <= set(NAMES), f"rules for tables that do not sync: {set(rules) - set(NAMES)}"


def test_every_synced_table_has_a_label() -> None:
    assert all(TABLE_LABELS[name].strip() for name in NAMES)
    assert len(set(TABLE_LABELS.values())) == len(NAMES)  # two tables never read alike


def test_every_synced_tables_conflict_description_names_columns_it_has() -> None:
    for entry in SYNCED_TABLES:
        record = entry.record
        named = [record.person, record.parent, record.value, record.own_name]
        unknown = [name for name in named if name and name not in entry.table.columns]
        assert not unknown, f"{entry.name}: a conflict is described by {unknown}, not its columns"
        assert str(record.noun).strip(), f"{entry.name}: its rows need a name"
        if record.value_labels:
            assert record.value, f"{entry.name}: words for the values of no field"
