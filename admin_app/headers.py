"""Security headers on every response of the console.

- X-Frame-Options DENY and CSP frame-ancestors 'none': no other site may frame the console
  and trick a signed-in admin into clicking (clickjacking). Report files are the exception
  (routes.py): the monitoring page frames them itself, so they allow the same origin.
- Content-Security-Policy: scripts only from this server plus Dash's own inline scripts,
  allowed one by one by their hashes (Dash.csp_hashes: the renderer's start-up line and the
  clientside callbacks), so injected markup cannot run script. Styles allow 'unsafe-inline'
  because Plotly, AG Grid and React set styles inline; a style cannot run script. Images and
  fonts may be data: URLs (Bootstrap's icons, Plotly's legends).
- X-Content-Type-Options nosniff: a file is only ever what its Content-Type says.
- Referrer-Policy same-origin: URLs of the console (account ids in a query) never leave it.
- Strict-Transport-Security when cookies are HTTPS-only, i.e. behind a TLS proxy.

A header a route has set itself is left as it is.
"""

from __future__ import annotations

from dash import Dash
from flask import Flask, Response

_STATIC_POLICY = (
    "default-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "frame-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)
_HSTS = "max-age=31536000"


def content_security_policy(app: Dash) -> str:
    # Computed per response, not once: Dash adds the pages' clientside callback (an inline
    # script) on its first request, after create_app has returned.
    scripts = " ".join(["'self'", *app.csp_hashes()])
    return "; ".join([f"script-src {scripts}", *_STATIC_POLICY])


def install_headers(server: Flask, app: Dash, https: bool) -> None:
    def secure(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", content_security_policy(app))
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        if https:
            headers.setdefault("Strict-Transport-Security", _HSTS)
        return response

    server.after_request(secure)
