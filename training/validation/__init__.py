"""The validation report of a model version (SR 11-7 style): data and lineage, conceptual
soundness, discrimination and calibration (overall, by segment, per snapshot month),
benchmarks, stability, sensitivity, fairness and limitations.

Built at evaluation time (evaluate_and_validate, the `collectwise train evaluate` step)
from the training set and the fitted bundle, written as
validation.json, a self-contained validation.html and validation.pdf (printed from the HTML
by headless Chromium), and logged with the version's run. Modules: inputs (gather what the
report needs once), stats (the figures), sections and checks (one function per section),
limits (the limitations text), figures, render (HTML and PDF), template.
"""

from training.validation.build import (
    HTML_NAME,
    JSON_NAME,
    PDF_NAME,
    VALIDATION_DIR,
    build_validation,
    evaluate_and_validate,
    validate_bundle,
    write_validation,
)
from training.validation.inputs import Incumbent, ValidationInputs, gather
from training.validation.render import PdfRenderError, render_html, render_pdf

__all__ = [
    "HTML_NAME",
    "JSON_NAME",
    "PDF_NAME",
    "VALIDATION_DIR",
    "Incumbent",
    "PdfRenderError",
    "ValidationInputs",
    "build_validation",
    "evaluate_and_validate",
    "gather",
    "render_html",
    "render_pdf",
    "validate_bundle",
    "write_validation",
]
