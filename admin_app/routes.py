"""Plain Flask routes beside the Dash pages: report files, batch results and the validation
reports of registered versions.

The file routes resolve the name against one root and refuse anything outside it; the
validation route reads the registry. The guard in auth.py has already required a signed-in
user for every one of them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from flask import Flask, Response, abort, redirect, request, send_file

from admin_app.auth import has_role, signed_in
from admin_app.backends import backends
from admin_app.logic.files import safe_path

REPORTS_PREFIX = "/reports/"
HOME = "/models"
REPORT_POLICY = "sandbox allow-scripts; frame-ancestors 'self'"
# A version's validation report, from its MLflow run: /validation/v3.html (or .pdf, .json).
VALIDATION_PREFIX = "/validation/"
VALIDATION_TYPES = {"html": "text/html", "pdf": "application/pdf", "json": "application/json"}


def install_routes(server: Flask) -> None:
    # Dash owns "/" (its index route); send the bare root to the first page instead.
    server.before_request(_home)
    server.add_url_rule(f"{REPORTS_PREFIX}<path:relative>", "report_file", _report_file)
    server.add_url_rule("/batch/<job_id>/scores.csv", "batch_result", _batch_result)
    server.add_url_rule(
        f"{VALIDATION_PREFIX}v<int:version>.<kind>", "validation_report", _validation_report
    )


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


def validation_link(version: int, kind: str = "html") -> str:
    return f"{VALIDATION_PREFIX}v{version}.{kind}"


def _validation_report(version: int, kind: str) -> Response:
    """A registered version's validation report, read from its run for a signed-in user."""
    from collectwise.errors import CollectwiseError  # noqa: PLC0415
    from training.validation.versioned import download_validation  # noqa: PLC0415

    if kind not in VALIDATION_TYPES:
        abort(404)
    b = backends()
    with tempfile.TemporaryDirectory(prefix="collectwise-validation-") as tmp:
        try:
            paths = download_validation(
                version, Path(tmp), client=b.mlflow(), settings=b.platform.mlflow
            )
        except CollectwiseError:
            abort(404)
        if kind not in paths:
            abort(404)
        body = paths[kind].read_bytes()
    user = signed_in()
    b.actions.record(user.name if user else "?", "validation_download", "ok", target=f"v{version}")
    response = Response(body, mimetype=VALIDATION_TYPES[kind])
    response.headers["Content-Security-Policy"] = REPORT_POLICY
    response.headers["Content-Disposition"] = f'inline; filename="validation_v{version}.{kind}"'
    return response
