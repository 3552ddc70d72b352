"""`collectwise train ...`: training sets, fitting, evaluation and registration.

Each command is one DVC stage; `run` chains them for interactive use. Training settings come
from the `train` section of params.yaml.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from collectwise.settings import get_settings
from collectwise.shell import new_app

app = new_app(help="Build training sets, fit, evaluate and register models.", no_args_is_help=True)
log = logging.getLogger("collectwise.train")

DATASET = Path("data/training")
MODEL = Path("models/candidate")
REPORT = Path("reports/evaluation")
STUDY = Path("data/optuna/studies.db")

ParamsOpt = Annotated[Path, typer.Option(help="params.yaml with a `train` section")]
SectionOpt = Annotated[
    str,
    typer.Option(
        "--params-section",
        help="params.yaml section merged over `train` (e.g. train_uci for the UCI stages)",
    ),
]
# Inputs that must exist: a missing one is a usage error naming the option, before any work.
DatasetIn = Annotated[
    Path, typer.Option(exists=True, file_okay=False, help="training set directory")
]
ModelIn = Annotated[Path, typer.Option(exists=True, file_okay=False, help="model directory")]
ReportIn = Annotated[Path, typer.Option(exists=True, file_okay=False, help="report directory")]


def _params(path: Path, section: str = "train") -> Any:
    """The `train` section, with `section` (when another one) merged over it key by key."""
    from training.train import TrainParams  # noqa: PLC0415

    values = (yaml.safe_load(path.read_text()) if path.exists() else {}) or {}
    if section != "train" and section not in values:
        raise typer.BadParameter(
            f"{path} has no section {section!r}", param_hint="--params-section"
        )
    return TrainParams.from_dict({**(values.get("train") or {}), **(values.get(section) or {})})


@app.command("build-dataset")
def build_dataset(
    features: Annotated[Path | None, typer.Option(help="feature tables")] = None,
    raw: Annotated[Path | None, typer.Option(help="validated raw tables")] = None,
    oracle: Annotated[Path | None, typer.Option(help="the generator's _oracle dir")] = None,
    out: Annotated[Path, typer.Option(help="dataset directory")] = DATASET,
) -> None:
    """Point-in-time training set from Feast over collection_risk_v1, matured labels only."""
    from ingestion.feast_store import open_store  # noqa: PLC0415
    from training.dataset import build_training_set  # noqa: PLC0415

    s = get_settings()
    store = open_store(s)
    oracle_dir = oracle or s.paths.raw_dir / "_oracle"
    summary = build_training_set(
        store,
        features or s.paths.features_dir,
        raw or s.paths.validated_dir,
        out,
        oracle_dir=oracle_dir if oracle_dir.exists() else None,
    )
    log.info(
        "training set: %d rows, %d positives, fingerprint %s",
        summary.rows,
        summary.positives,
        summary.dataset_fingerprint[:12],
    )


@app.command()
def fit(
    dataset: DatasetIn = DATASET,
    out: Annotated[Path, typer.Option(help="model directory")] = MODEL,
    study: Annotated[Path, typer.Option(help="Optuna SQLite storage")] = STUDY,
    params: ParamsOpt = Path("params.yaml"),
    section: SectionOpt = "train",
) -> None:
    """Tune with Optuna, compare candidates and their stack, refit, calibrate, choose
    threshold and bands."""
    from training.train import fit as run_fit  # noqa: PLC0415

    summary = run_fit(dataset, out, _params(params, section), study)
    log.info(
        "fit: %s",
        json.dumps({k: summary[k] for k in ("chosen", "threshold", "bands")}, default=str),
    )


@app.command()
def evaluate(
    dataset: DatasetIn = DATASET,
    model: ModelIn = MODEL,
    out: Annotated[Path, typer.Option(help="report directory")] = REPORT,
    params: ParamsOpt = Path("params.yaml"),
    section: SectionOpt = "train",
    quality: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="raw data quality.json (default: found)"),
    ] = None,
) -> None:
    """Score the untouched test rows once; write the evaluation and validation reports and
    metrics.json."""
    from training.validation import evaluate_and_validate  # noqa: PLC0415

    evaluate_and_validate(dataset, model, out, _params(params, section), quality_path=quality)


@app.command("compare-baseline")
def compare_baseline(
    dataset: DatasetIn = DATASET,
    model: ModelIn = MODEL,
    out: Annotated[Path, typer.Option(help="report directory")] = Path("reports/comparison"),
    params: ParamsOpt = Path("params.yaml"),
    section: SectionOpt = "train",
) -> None:
    """The fitted model beside the untuned raw-column baseline on the same rows: ROC AUC, PR
    AUC and F1 with intervals, by repeated stratified CV and on the test split."""
    from training.baseline import compare_with_baseline  # noqa: PLC0415

    report = compare_with_baseline(dataset, model, out, _params(params, section))
    log.info("champion at least the baseline: %s", report["champion_at_least_baseline"])


@app.command()
def register(
    model: ModelIn = MODEL,
    report: ReportIn = REPORT,
    out: Annotated[Path, typer.Option(help="where to record the registered version")] = Path(
        "reports/registered.json"
    ),
    params: ParamsOpt = Path("params.yaml"),
    section: SectionOpt = "train",
) -> None:
    """Register the evaluated model in MLflow with its gate checks; it becomes `challenger`
    when it passes them."""
    from training.train import register_model  # noqa: PLC0415

    meta = register_model(model, report, _params(params, section))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(meta.to_dict(), indent=2, default=str))
    log.info("registered %s v%s as challenger", meta.name, meta.version)


@app.command("shuffled-check")
def shuffled_check(
    dataset: DatasetIn = DATASET,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Leakage check: the model on permuted labels must have AUC near 0.5."""
    from training.train import shuffled_label_auc  # noqa: PLC0415

    auc = shuffled_label_auc(dataset, _params(params))
    log.info("AUC with shuffled labels: %.4f", auc)
    if abs(auc - 0.5) > 0.05:
        log.error("shuffled labels give AUC %.3f: something leaks the label", auc)
        raise typer.Exit(code=1)
