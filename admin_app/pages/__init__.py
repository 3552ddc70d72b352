"""The console's pages, in navbar order. Importing a page module only defines functions;
create_app registers each with Dash.

A page module has PATH, NAME, MIN_ROLE (the least role that may open it and run its
callbacks), layout(**query), register(app), and optionally CALLBACK_ROLES: output
component id -> a stricter role for the callbacks that write that component.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dash import Dash

from admin_app.logic.roles import Role
from admin_app.pages import (
    audit,
    decisions,
    explanations,
    fairness,
    health,
    models,
    monitoring,
    scoring,
    users,
)


@dataclass(frozen=True)
class Page:
    module: str
    path: str
    name: str
    min_role: Role
    layout: Callable[..., Any]
    register: Callable[[Dash], None]
    callback_roles: Mapping[str, Role]


def _page(module: Any) -> Page:
    return Page(
        module.__name__,
        module.PATH,
        module.NAME,
        module.MIN_ROLE,
        module.layout,
        module.register,
        getattr(module, "CALLBACK_ROLES", {}),
    )


PAGES: tuple[Page, ...] = tuple(
    _page(m)
    for m in (models, monitoring, scoring, explanations, decisions, fairness, health, audit, users)
)
