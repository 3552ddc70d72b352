"""The least role of every Dash callback, checked on the server before Dash runs it.

Every callback is reached through one route, POST /_dash-update-component, whose body
names the callback by its outputs; hiding a page or a button from a role does not stop
anyone posting there. So create_app registers each page's callbacks through
`CallbackRoles.register_page`, which gives every callback the page adds the page's
MIN_ROLE, raised where the page's CALLBACK_ROLES names one of the callback's output
components (an operator's batch progress on a page viewers may open). The guard in
auth.py looks each request's callback up here:

- no such callback (or one that runs in the browser): 404, saying so;
- a callback no page registered: 403 for everyone, logged as an error (default deny: a
  callback added without a role fails closed instead of open);
- a role below the callback's: 403, and no callback code runs.

Dash's own page router is allowed to every signed-in user: it renders a page's layout
through app._guarded, which checks the page's role itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dash import Dash

from admin_app.logic.roles import ROLES, Role, at_least

log = logging.getLogger(__name__)

DISPATCH = "_dash-update-component"
# The outputs of Dash's pages router (dash.page_container): registered on the first request.
_ROUTER_IDS = frozenset({"_pages_content", "_pages_store"})
_KEY_SHOWN = 200


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


def output_ids(key: str) -> list[str]:
    """Component ids in a callback key: 'a.b', or '..a.b...c.d@hash..' for several."""
    parts = key[2:-2].split("...") if key.startswith("..") and key.endswith("..") else [key]
    return [part.split("@", 1)[0].rsplit(".", 1)[0] for part in parts]


def strictest(roles: Iterable[Role]) -> Role:
    return max(roles, key=ROLES.index)


class CallbackRoles:
    def __init__(self, app: Dash) -> None:
        self.app = app
        self.dispatch_path = f"{app.config.routes_pathname_prefix}{DISPATCH}"
        self._least: dict[str, Role] = {}

    def register_page(
        self,
        register: Callable[[Dash], None],
        min_role: Role,
        callback_roles: Mapping[str, Role] | None = None,
    ) -> None:
        """Run a page's `register(app)`; each callback it adds gets the page's role."""
        raised = callback_roles or {}
        before = set(self.app.callback_map)
        register(self.app)
        for key in set(self.app.callback_map) - before:
            found = [raised[c] for c in output_ids(key) if c in raised]
            self._least[key] = strictest([min_role, *found])

    def least_role(self, key: str) -> Role | None:
        """The least role that may run the callback `key`; None when it has no role."""
        if key in self._least:
            return self._least[key]
        if set(output_ids(key)) <= _ROUTER_IDS:
            return "viewer"
        return None

    def check(self, body: Any, role: Role | None) -> Refusal | None:
        """Why the callback request `body` is refused for `role`, or None to let it run."""
        key = body.get("output") if isinstance(body, dict) else None
        if not isinstance(key, str) or not key:
            return Refusal(400, "not a Dash callback request: the JSON body names no output")
        shown = key[:_KEY_SHOWN]
        if not self._runs_on_server(key):
            return Refusal(404, f"no server callback has the output {shown!r}")
        least = self.least_role(key)
        if least is None:
            log.error("callback %s was registered without a role: refused", shown)
            return Refusal(403, f"the callback {shown!r} has no role set: refused")
        if not at_least(role, least):
            return Refusal(403, f"your role ({role or 'none'}) may not run this callback: "
                                f"it needs {least}")  # fmt: skip
        return None

    def _runs_on_server(self, key: str) -> bool:
        entry = self.app.callback_map.get(key)
        if entry is None:
            # The router is added on the first request that reaches Dash, which may be
            # this one (a page left open across a restart): Dash registers it before it runs.
            return set(output_ids(key)) <= _ROUTER_IDS
        return "callback" in entry
