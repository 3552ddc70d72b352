"""The validation report as one self-contained HTML page (Jinja2, plots inline) and as a PDF
printed from that page by headless Chromium, so both show the same content."""

from __future__ import annotations

import logging
import shutil
import subprocess  # nosec B404  # runs the Chromium binary found on PATH, no shell
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment

from collectwise.errors import InvalidInputError
from training.report import _fmt, _short
from training.validation.figures import figures
from training.validation.template import TEMPLATE

log = logging.getLogger(__name__)

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PDF_TIMEOUT_S = 120.0


class PdfRenderError(InvalidInputError, RuntimeError):
    """The PDF cannot be printed (no Chromium on PATH, or Chromium failed)."""


def render_html(report: Mapping[str, Any]) -> str:
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    env.filters["short"] = _short
    return env.from_string(TEMPLATE).render(r=report, figures=figures(report))


def chromium_path() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise PdfRenderError(
        "no Chromium on PATH (looked for " + ", ".join(CHROMIUM_NAMES) + "): install the "
        "chromium package to print the validation report as PDF"
    )


def render_pdf(html_path: Path, pdf_path: Path) -> Path:
    """Print `html_path` to `pdf_path` with headless Chromium (A4, backgrounds kept)."""
    binary = chromium_path()
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    # A profile of its own: Chromium refuses a second instance on a shared profile.
    with tempfile.TemporaryDirectory(prefix="collectwise-chromium-") as profile:
        command = [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
            f"--user-data-dir={profile}", f"--print-to-pdf={pdf_path}",
            Path(html_path).resolve().as_uri(),
        ]  # fmt: skip
        done = subprocess.run(  # nosec B603  # fixed arguments, binary from shutil.which
            command, capture_output=True, timeout=PDF_TIMEOUT_S, check=False
        )
    if done.returncode != 0 or not pdf_path.is_file() or pdf_path.stat().st_size == 0:
        tail = done.stderr.decode(errors="replace")[-1500:]
        raise PdfRenderError(
            f"Chromium could not print {html_path} (exit {done.returncode}): {tail}"
        )
    log.info("validation report PDF written to %s", pdf_path)
    return pdf_path
