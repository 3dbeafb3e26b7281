"""Template globals: navigation by role, and small display filters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask
from flask_login import current_user


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: str
    roles: frozenset[str]


# Every role-specific page a user can reach from the top bar.
NAVIGATION: list[NavItem] = [
    NavItem("main.index", "Home", frozenset({"instructor", "lab_staff", "admin"})),
    NavItem("registration.mine", "My registrations", frozenset({"student"})),
    NavItem("catalogue.index", "Catalogue",
            frozenset({"student", "instructor", "lab_staff", "admin"})),
    NavItem("accounts.users", "Users", frozenset({"admin"})),
]


def navigation_for(role: str | None) -> list[NavItem]:
    return [item for item in NAVIGATION if role in item.roles]


def init_app(app: Flask) -> None:
    app.jinja_env.add_extension("jinja2.ext.do")

    @app.context_processor
    def _globals() -> dict[str, Any]:
        role = current_user.role if current_user.is_authenticated else None
        return {"navigation": navigation_for(role), "portal_version": app.config["VERSION"]}

    @app.template_filter("datetime")
    def _format_datetime(value: datetime | None) -> str:
        return value.strftime("%d %b %Y, %H:%M") if value else "—"

    @app.template_filter("date")
    def _format_date(value: Any) -> str:
        return value.strftime("%d %b %Y") if value else "—"
