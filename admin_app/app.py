"""create_app(): the Flask server with sign-in, and the Dash pages on it.

Dash pages (use_pages) route the URL to a page's layout; the pages are registered here,
not at import, so importing admin_app does nothing and tests can build an app of their own.
Each page module has PATH, NAME, MIN_ROLE, layout(**query) and register(app); its
callbacks are registered through callbacks.CallbackRoles, so each one gets a least role
that the guard checks on every callback request.
"""

from __future__ import annotations

import logging
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Dash, html
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from admin_app import auth, routes
from admin_app.auth import current_role, has_role, signed_in
from admin_app.backends import EXTENSION_KEY, Backends
from admin_app.callbacks import CallbackRoles
from admin_app.components import not_permitted
from admin_app.headers import install_headers
from admin_app.pages import PAGES, Page
from admin_app.security import CSRF_COOKIE, CSRF_HEADER, secret_key

log = logging.getLogger(__name__)

TITLE = "Collectwise console"


def create_app(backends: Backends | None = None) -> Dash:
    b = backends or Backends()
    settings = b.settings
    server = Flask("admin_app")
    if settings.trusted_proxies:
        # The login throttle counts per client: behind a proxy, the client is in X-F-F.
        server.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            server.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies
        )
    server.secret_key = secret_key(settings, b.paths.secret_key_file)
    server.extensions[EXTENSION_KEY] = b
    # The guard must run before Dash's own before_request hooks: install it first.
    auth.install_auth(server, b)
    routes.install_routes(server)
    app = Dash(
        "admin_app",
        server=server,  # type: ignore[arg-type]
        use_pages=True,
        pages_folder="",
        title=TITLE,
        update_title=None,  # type: ignore[arg-type]
        suppress_callback_exceptions=True,
        serve_locally=True,
        csrf_token_name=CSRF_COOKIE,
        csrf_header_name=CSRF_HEADER,
    )
    install_headers(server, app, https=settings.secure_cookies)
    roles = CallbackRoles(app)
    for order, page in enumerate(PAGES):
        dash.register_page(
            page.module,
            path=page.path,
            name=page.name,
            title=f"{page.name} · {TITLE}",
            order=order,
            layout=_guarded(page),
        )
        roles.register_page(page.register, page.min_role, page.callback_roles)
    auth.install_callback_roles(server, roles)
    app.layout = _shell
    return app


def _guarded(page: Page) -> Any:
    def layout(**query: Any) -> Any:
        if not has_role(page.min_role):
            return not_permitted(f"open {page.name} (it needs the {page.min_role} role)")
        return page.layout(**query)

    return layout


def _shell() -> Any:
    """Navbar (the pages this role may open), the page, and the footer note."""
    user = signed_in()
    role = current_role()
    links = [
        dbc.NavItem(dbc.NavLink(p.name, href=p.path, active="exact"))
        for p in PAGES
        if has_role(p.min_role)
    ]
    who = html.Span(
        [
            html.Span(user.name if user else "", id="nav-user", className="me-2"),
            dbc.Badge(role or "", color="info", id="nav-role", className="me-3"),
            html.A("Sign out", href="/logout", className="link-light", id="nav-logout"),
        ],
        className="ms-auto text-light small d-flex align-items-center",
    )
    navbar = dbc.Navbar(
        dbc.Container(
            [dbc.NavbarBrand("Collectwise", href="/models"), dbc.Nav(links, navbar=True), who],
            fluid=True,
        ),
        color="dark",
        dark=True,
        className="mb-3",
    )
    return html.Div(
        [
            navbar,
            dbc.Container(dash.page_container, fluid=True, className="pb-5"),
        ]
    )
