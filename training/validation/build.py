"""Assemble the validation report from its sections and write its three files."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.report import jsonable
from training.scoring_model import ScoringModel, load_bundle
from training.train import MODEL_FILE, TrainParams, evaluate_and_report
from training.validation.checks import benchmarks, fairness, sensitivity, stability
from training.validation.inputs import Incumbent, ValidationInputs, gather
from training.validation.limits import limitations
from training.validation.render import PdfRenderError, chromium_path, render_html, render_pdf
from training.validation.sections import data_lineage, performance, soundness

log = logging.getLogger(__name__)

# The run's artifact folder and the file names inside it.
VALIDATION_DIR = "validation"
JSON_NAME = "validation.json"
HTML_NAME = "validation.html"
PDF_NAME = "validation.pdf"


def build_validation(inp: ValidationInputs) -> dict[str, Any]:
    """Every section as one JSON-ready document; limitations are written from the others."""
    started = time.perf_counter()
    report: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {
            "label": inp.model_label,
            "kind": inp.bundle.metadata.get("kind"),
            "threshold": inp.bundle.threshold,
            "bands": {"low_max": inp.bundle.low_max, "medium_max": inp.bundle.medium_max},
        },
        "data": data_lineage(inp),
        "soundness": soundness(inp),
        "performance": performance(inp),
        "benchmarks": benchmarks(inp),
        "stability": stability(inp),
        "sensitivity": sensitivity(inp),
        "fairness": fairness(inp),
    }
    report = jsonable(report)
    report["limitations"] = limitations(report)
    log.info(
        "validation report of %s built in %.1fs", inp.model_label, time.perf_counter() - started
    )
    return report


def write_validation(report: dict[str, Any], out_dir: Path, *, pdf: bool = True) -> dict[str, Path]:
    """validation.json, validation.html and (with pdf) validation.pdf under out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / JSON_NAME, "html": out / HTML_NAME}
    paths["json"].write_text(json.dumps(report, indent=2, allow_nan=False), encoding="utf-8")
    paths["html"].write_text(render_html(report), encoding="utf-8")
    if pdf:
        paths["pdf"] = render_pdf(paths["html"], out / PDF_NAME)
    log.info("validation report written to %s", out)
    return paths


def validate_bundle(
    dataset_dir: Path,
    bundle: ScoringModel,
    params: TrainParams,
    out_dir: Path,
    *,
    model_label: str,
    model_dir: Path | None = None,
    quality_path: Path | None = None,
    incumbent: Incumbent | None = None,
    pdf: bool | None = None,
) -> dict[str, Path]:
    """Gather, build and write the report of a fitted bundle into out_dir.

    pdf=None prints the PDF when Chromium is installed and logs that it did not otherwise
    (evaluation must not fail for want of a browser); True requires it.
    """
    inputs = gather(
        dataset_dir, bundle, params, model_label=model_label, model_dir=model_dir,
        quality_path=quality_path, incumbent=incumbent,
    )  # fmt: skip
    if pdf is None:
        pdf = _has_chromium()
    return write_validation(build_validation(inputs), out_dir, pdf=pdf)


def _has_chromium() -> bool:
    try:
        chromium_path()
    except PdfRenderError as exc:
        log.warning("validation.pdf not written: %s", exc)
        return False
    return True


def evaluate_and_validate(
    dataset_dir: Path,
    model_dir: Path,
    out_dir: Path,
    params: TrainParams,
    quality_path: Path | None = None,
) -> dict[str, Path]:
    """The evaluation step: training.train's evaluation report and metrics, then the
    validation report under out_dir/validation/, which register_model logs with the run.

    quality_path is the raw data's quality.json; None looks for it beside the raw data.
    """
    evaluate_and_report(dataset_dir, model_dir, out_dir, params)
    bundle = load_bundle(Path(model_dir) / MODEL_FILE)
    data = str(bundle.metadata.get("data_fingerprint", ""))[:12]
    return validate_bundle(
        dataset_dir, bundle, params, Path(out_dir) / VALIDATION_DIR,
        model_label=f"candidate (data {data})", model_dir=model_dir, quality_path=quality_path,
    )  # fmt: skip
