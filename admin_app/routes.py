"""Plain Flask routes beside the Dash pages: report files and batch results.

Both serve files, so both resolve the name against one root and refuse anything outside
it; the guard in auth.py has already required a signed-in user.
"""

from __future__ import annotations

from flask import Flask, Response, abort, redirect, request, send_file

from admin_app.auth import has_role, signed_in
from admin_app.backends import backends
from admin_app.logic.files import safe_path

REPORTS_PREFIX = "/reports/"
HOME = "/models"
REPORT_POLICY = "sandbox allow-scripts; frame-ancestors 'self'"


def install_routes(server: Flask) -> None:
    # Dash owns "/" (its index route); send the bare root to the first page instead.
    server.before_request(_home)
    server.add_url_rule(f"{REPORTS_PREFIX}<path:relative>", "report_file", _report_file)
    server.add_url_rule("/batch/<job_id>/scores.csv", "batch_result", _batch_result)


def _home() -> Response | None:
    if request.path == "/" and request.method == "GET":
        return redirect(HOME)  # type: ignore[return-value]
    return None


def _report_file(relative: str) -> Response:
    path = safe_path(backends().paths.monitoring_reports_dir, relative)
    if path is None:
        abort(404)
    response = send_file(path, max_age=0)
    # The report runs in its own opaque origin: its scripts cannot reach the console's
    # cookies or pages, whatever the HTML holds. Only the console may frame it (the
    # monitoring page does); headers.py sets the rest.
    response.headers["Content-Security-Policy"] = REPORT_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def _batch_result(job_id: str) -> Response:
    b = backends()
    user = signed_in()
    try:
        job = b.jobs.get(job_id)
        path = b.jobs.result_path(job_id)
    except ValueError:
        abort(404)
    if job is None or user is None or not path.is_file():
        abort(404)
    if job.owner != user.name and not has_role("admin"):
        abort(403)
    b.actions.record(user.name, "batch_download", "ok", target=job_id, detail=job.name)
    return send_file(
        path, mimetype="text/csv", as_attachment=True, download_name=f"scores-{job_id[:8]}.csv"
    )
