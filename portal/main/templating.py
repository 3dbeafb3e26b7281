"""Template globals: navigation by role, and small display filters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask_login import current_user

from portal.languages import N_
from portal.models import ROLES
from portal.web import take_undo_offers


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: str  # marked with N_, translated in the top bar
    roles: frozenset[str]
    mode: str = ""  # "server" or "desktop": shown in that mode only


ALL_ROLES = frozenset(ROLES)
STAFF = frozenset({"instructor", "lab_staff"})
ADMIN = frozenset({"admin"})

# The top bar, in order. An entry whose endpoint is not registered is left out.
NAVIGATION: list[NavItem] = [
    NavItem("main.index", N_("Home"), STAFF | ADMIN),
    NavItem("registration.mine", N_("My registrations"), frozenset({"student"})),
    NavItem("grading.my_grades", N_("My grades"), frozenset({"student"})),
    NavItem("submissions.mine", N_("Lab reports"), frozenset({"student"})),
    NavItem("catalogue.index", N_("Catalogue"), ALL_ROLES),
    NavItem("admin.dashboard", N_("Dashboard"), ADMIN),
    NavItem("admin.terms", N_("Terms & courses"), ADMIN),
    NavItem("accounts.users", N_("Users"), ADMIN),
    NavItem("admin.imports", N_("Import"), ADMIN),
    NavItem("audit.log", N_("Audit log"), ADMIN),
    NavItem("sync_admin.devices", N_("Sync"), ADMIN, mode="server"),  # devices, then conflicts
]


def navigation_for(role: str | None, endpoints: set[str], mode: str = "") -> list[NavItem]:
    return [
        item
        for item in NAVIGATION
        if role in item.roles and item.endpoint in endpoints and item.mode in ("", mode)
    ]


def init_app(app: Flask) -> None:
    app.jinja_env.add_extension("jinja2.ext.do")
    app.add_template_global(take_undo_offers)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        role = current_user.role if current_user.is_authenticated else None
        endpoints = set(app.view_functions)
        return {
            "navigation": navigation_for(role, endpoints, app.config["PORTAL"]["MODE"]),
            "portal_version": app.config["VERSION"],
        }
