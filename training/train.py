"""Training as three steps, one DVC stage each: fit, evaluate, register.

fit: compare candidate models on validation, tune the chosen family with Optuna on
account-grouped CV folds inside the training rows, refit, calibrate, and choose the
threshold and risk bands on validation. evaluate: score the untouched test rows once and
write the report. register: log the bundle with its lineage to MLflow as `challenger`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feature_repo.transformations import LABEL_WINDOW_DAYS
from training.dataset import read_dataset, read_summary
from training.estimators import build_estimator, fit_with_eval_set
from training.evaluate import (
    DEFAULT_COSTS,
    Candidate,
    calibrate,
    choose_threshold,
    compare_candidates,
    evaluate,
    risk_bands,
)
from training.model_matrix import model_matrix, monotone_constraints
from training.scoring_model import ScoringModel, load_bundle, save_bundle
from training.splits import Split, choose_splitter
from training.tuning import SearchSpace, tune

log = logging.getLogger(__name__)

LABEL = "default_30d"
MODEL_FILE = "model.pkl"
FIT_SUMMARY = "fit.json"
# A sample of the training rows, stored with the model: monitoring's drift reference.
REFERENCE_FILE = "reference.parquet"
REFERENCE_ROWS = 5000
_NOT_FEATURES = ("protected__", "oracle__")


@dataclass(frozen=True)
class TrainParams:
    """The `train` section of params.yaml."""

    candidates: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"kind": "logistic", "imbalance": "class_weight"},
            {"kind": "xgboost", "imbalance": "class_weight"},
            {"kind": "xgboost", "imbalance": "smote"},
            {"kind": "lightgbm", "imbalance": "class_weight"},
            {"kind": "stacking", "imbalance": "class_weight"},
        ]
    )
    tune_kinds: list[str] = field(default_factory=lambda: ["xgboost", "lightgbm"])
    tune_imbalances: list[str] = field(default_factory=lambda: ["none", "class_weight"])
    select_ks: list[int | None] = field(default_factory=lambda: [None])
    n_trials: int = 12
    timeout_seconds: float = 300.0
    cv_splits: int = 3
    threshold_objective: str = "f1"
    costs: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_COSTS))
    band_quantiles: tuple[float, float] = (0.5, 0.8)
    label_grace_days: int = 21
    test_snapshots: int = 2
    valid_snapshots: int = 2
    # Which accounts land in train / valid / test. Kept apart from the model seed so every
    # model trained on a dataset is tested on the same rows and the gate compares like
    # with like.
    split_seed: int = 0
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> TrainParams:
        values = dict(values or {})
        if "band_quantiles" in values:
            values["band_quantiles"] = tuple(values["band_quantiles"])
        return cls(**values)


@dataclass
class Prepared:
    frame: pd.DataFrame
    x: pd.DataFrame
    y: np.ndarray
    split: Split
    splitter_kind: str


def prepare(dataset_dir: Path, params: TrainParams) -> Prepared:
    """The dataset as a model matrix with its split; training rows whose labels matured
    after the validation snapshot are dropped, as they would not exist yet in production."""
    frame = read_dataset(dataset_dir)
    splitter = replace(
        choose_splitter(frame, seed=params.split_seed),
        test_snapshots=params.test_snapshots,
        valid_snapshots=params.valid_snapshots,
    )
    split = splitter.split(frame)
    if splitter.kind == "out_of_time":
        split = _drop_unmatured_training_rows(frame, split, params.label_grace_days)
    x = model_matrix(frame)
    y = frame[LABEL].to_numpy(dtype=int)
    log.info(
        "%s split: train %d, valid %d, test %d rows; %d model columns",
        splitter.kind,
        len(split.train),
        len(split.valid),
        len(split.test),
        x.shape[1],
    )
    return Prepared(frame, x, y, split, splitter.kind)


def _drop_unmatured_training_rows(frame: pd.DataFrame, split: Split, grace: int) -> Split:
    valid_start = frame["event_timestamp"].iloc[split.valid].min()
    matures = frame["event_timestamp"] + timedelta(days=LABEL_WINDOW_DAYS + grace)
    known = np.flatnonzero((matures <= valid_start).to_numpy())
    train = np.intersect1d(split.train, known)
    log.info(
        "dropped %d training rows whose labels matured after validation began",
        len(split.train) - len(train),
    )
    return Split(train=train, valid=split.valid, test=split.test)


def fit(dataset_dir: Path, out_dir: Path, params: TrainParams, study_path: Path) -> dict[str, Any]:
    """Compare, tune, refit, calibrate; write the bundle and what was decided."""
    started = time.perf_counter()
    data = prepare(dataset_dir, params)
    x_tr, y_tr = data.x.iloc[data.split.train], data.y[data.split.train]
    x_va, y_va = data.x.iloc[data.split.valid], data.y[data.split.valid]
    monotone = dict(zip(data.x.columns, monotone_constraints(list(data.x.columns)), strict=True))
    comparison = compare_candidates(
        [Candidate(**c) for c in params.candidates], x_tr, y_tr, x_va, y_va, monotone, params.seed
    )
    # One study per dataset: rerunning on the same data resumes it with more trials.
    study_name = f"collection-risk-{read_summary(dataset_dir).dataset_fingerprint[:12]}"
    tuning = _tune(data, params, monotone, study_path, study_name)
    chosen = tuning.chosen
    model = build_estimator(
        chosen.kind, chosen.params, chosen.imbalance, monotone, chosen.select_k, params.seed
    )
    fit_with_eval_set(model, x_tr, y_tr, x_va, y_va)
    calibration = calibrate(model, x_va, y_va, seed=params.seed)
    p_valid = calibration.model.predict_proba(x_va)[:, 1]
    threshold = choose_threshold(y_va, p_valid, params.threshold_objective, params.costs)
    low_max, medium_max = risk_bands(p_valid, params.band_quantiles)
    bundle = _bundle(dataset_dir, data, calibration, threshold, (low_max, medium_max), chosen)
    summary = {
        "splitter": data.splitter_kind,
        "rows": {"train": len(y_tr), "valid": len(y_va), "test": len(data.split.test)},
        "comparison": comparison,
        "tuning": tuning.as_dict(),
        "chosen": asdict(chosen),
        "calibration": {"method": calibration.method, "brier": calibration.brier},
        "threshold": threshold,
        "bands": {"low_max": low_max, "medium_max": medium_max},
        "valid": evaluate(y_va, p_valid, threshold, (low_max, medium_max)),
        "seconds": round(time.perf_counter() - started, 1),
    }
    _write_fit(out_dir, bundle, summary)
    write_reference(data, bundle, out_dir / REFERENCE_FILE, params.seed)
    return summary


def write_reference(data: Prepared, bundle: ScoringModel, path: Path, seed: int) -> Path:
    """The drift reference: training rows as Feast returns them, scored by the final model.

    Raw full-named feature columns (not the model matrix) because drift and skew compare
    what the feature store serves; protected attributes and the generator's oracle stay out.
    """
    rows = data.split.train
    if len(rows) > REFERENCE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, REFERENCE_ROWS, replace=False))
    frame = data.frame.iloc[rows]
    keep = [
        c
        for c in frame.columns
        if ("__" in str(c) and not str(c).startswith(_NOT_FEATURES))
        or c in ("account_id", "customer_id", "event_timestamp", LABEL)
    ]
    reference = frame[keep].reset_index(drop=True)
    reference["probability"] = bundle.predict_proba(data.x.iloc[rows])
    reference.to_parquet(path, index=False)
    log.info("drift reference: %d training rows -> %s", len(reference), path)
    return path


def _tune(
    data: Prepared, params: TrainParams, monotone: dict[str, int], study_path: Path, name: str
) -> Any:
    train_frame = data.frame.iloc[data.split.train].reset_index(drop=True)
    # Training rows all come from one bucket of accounts; an independent seed spreads the
    # folds' validation accounts across it instead of missing it.
    splitter = choose_splitter(train_frame, seed=params.split_seed + 1)
    folds = [f for f in splitter.cv(train_frame, params.cv_splits) if len(f[1]) and len(f[0])]
    space = SearchSpace(params.tune_kinds, params.tune_imbalances, params.select_ks)
    study_path.parent.mkdir(parents=True, exist_ok=True)
    return tune(
        data.x.iloc[data.split.train].reset_index(drop=True),
        data.y[data.split.train],
        folds,
        space=space,
        costs=params.costs,
        monotone=monotone,
        storage_path=study_path,
        study_name=name,
        n_trials=params.n_trials,
        timeout=params.timeout_seconds,
        seed=params.seed,
    )


def _bundle(
    dataset_dir: Path,
    data: Prepared,
    calibration: Any,
    threshold: float,
    bands: tuple[float, float],
    chosen: Any,
) -> ScoringModel:
    summary = read_summary(dataset_dir)
    return ScoringModel(
        estimator=calibration.model,
        calibrator=None,
        threshold=float(threshold),
        low_max=float(bands[0]),
        medium_max=float(bands[1]),
        feature_columns=list(data.x.columns),
        feature_service=summary.service_name,
        definitions_fingerprint=summary.definitions_fingerprint,
        metadata={
            "calibration": calibration.method,
            "data_fingerprint": summary.dataset_fingerprint,
            "kind": chosen.kind,
            "imbalance": chosen.imbalance,
        },
    )


def _write_fit(out_dir: Path, bundle: ScoringModel, summary: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    save_bundle(bundle, out_dir / MODEL_FILE)
    (out_dir / FIT_SUMMARY).write_text(json.dumps(summary, indent=2, default=str))
    log.info(
        "fitted %s (%s) in %.0fs: threshold %.3f",
        summary["chosen"]["kind"],
        summary["chosen"]["imbalance"],
        summary["seconds"],
        summary["threshold"],
    )


def test_set_fingerprint(frame: pd.DataFrame, rows: np.ndarray) -> str:
    """Which rows the test metrics are about: the promotion gate compares like with like."""
    keys = frame.iloc[rows][["account_id", "event_timestamp"]].astype(str)
    return hashlib.sha256("\n".join(keys.agg("|".join, axis=1)).encode()).hexdigest()


@dataclass
class HeldOutScores:
    """What the test step computed, kept for the report instead of being rebuilt."""

    metrics: dict[str, Any]
    frame: pd.DataFrame
    x: pd.DataFrame
    p: np.ndarray
    bundle: ScoringModel


def evaluate_model(dataset_dir: Path, model_dir: Path, params: TrainParams) -> HeldOutScores:
    """Test-set figures of the fitted bundle, with the test rows, matrix and scores."""
    data = prepare(dataset_dir, params)
    bundle = load_bundle(model_dir / MODEL_FILE)
    test = data.split.test
    frame = data.frame.iloc[test].reset_index(drop=True)
    x_test = data.x.iloc[test]
    p = bundle.predict_proba(x_test)
    oracle = frame.get("oracle__p_default")
    debt = frame.get("account_payment_velocity__debt_amount")
    metrics = evaluate(
        data.y[test],
        p,
        bundle.threshold,
        (bundle.low_max, bundle.medium_max),
        amounts=debt,
        oracle=oracle,
        costs=params.costs,
    )
    metrics["test_set_fingerprint"] = test_set_fingerprint(data.frame, test)
    metrics["splitter"] = data.splitter_kind
    return HeldOutScores(metrics, frame, x_test, p, bundle)


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalar test metrics, prefixed `test_`, for dvc metrics and the registry."""
    keys = (
        "roc_auc",
        "pr_auc",
        "f1",
        "precision",
        "recall",
        "brier",
        "threshold",
        "oracle_auc",
        "auc_ratio_to_oracle",
        "default_rate",
    )
    return {f"test_{k}": float(metrics[k]) for k in keys if metrics.get(k) is not None}


def shuffled_label_auc(dataset_dir: Path, params: TrainParams) -> float:
    """Leakage check: the same pipeline on permuted labels must score AUC near 0.5."""
    from training.evaluate import safe_auc  # noqa: PLC0415

    data = prepare(dataset_dir, params)
    rng = np.random.default_rng(params.seed)
    y_perm = rng.permutation(data.y)
    model = build_estimator("xgboost", None, "none", None, None, params.seed)
    model.fit(data.x.iloc[data.split.train], y_perm[data.split.train])
    p = model.predict_proba(data.x.iloc[data.split.test])[:, 1]
    return float(safe_auc(y_perm[data.split.test], p) or 0.5)


def evaluate_and_report(
    dataset_dir: Path, model_dir: Path, out_dir: Path, params: TrainParams
) -> dict[str, Any]:
    """The evaluation report (JSON + HTML) and metrics.json for `dvc metrics show`."""
    from training.explain import global_importance  # noqa: PLC0415
    from training.fairness import fairness_table  # noqa: PLC0415
    from training.report import build_report, write_report  # noqa: PLC0415

    scored = evaluate_model(dataset_dir, model_dir, params)
    metrics, test_frame, p, bundle = scored.metrics, scored.frame, scored.p, scored.bundle
    fitted = json.loads((model_dir / FIT_SUMMARY).read_text())
    protected = [str(c) for c in test_frame.columns if str(c).startswith("protected__")]
    groups = {c.removeprefix("protected__"): test_frame[c] for c in protected}
    report = build_report(
        run={
            "model_dir": str(model_dir),
            "dataset_dir": str(dataset_dir),
            "chosen": fitted["chosen"],
            "splitter": metrics["splitter"],
        },
        metrics={"test": metrics, "valid": fitted["valid"]},
        importance=global_importance(bundle.estimator, scored.x, seed=params.seed),
        fairness=fairness_table(test_frame[LABEL], p, bundle.threshold, groups),
        comparison=fitted["comparison"],
        calibration=fitted["calibration"],
    )
    write_report(report, out_dir)
    flat = flat_metrics(metrics)
    (out_dir / "metrics.json").write_text(json.dumps(flat, indent=2))
    (out_dir / "test_set.json").write_text(
        json.dumps({"test_set_fingerprint": metrics["test_set_fingerprint"]})
    )
    log.info("test metrics: %s", {k: round(v, 4) for k, v in flat.items()})
    return report


def register_model(model_dir: Path, report_dir: Path, params: TrainParams) -> Any:
    """Register the fitted bundle with its test metrics and report; it becomes challenger."""
    from training.registry import register  # noqa: PLC0415

    bundle = load_bundle(model_dir / MODEL_FILE)
    metrics = json.loads((report_dir / "metrics.json").read_text())
    test_set = json.loads((report_dir / "test_set.json").read_text())["test_set_fingerprint"]
    fitted = json.loads((model_dir / FIT_SUMMARY).read_text())
    return register(
        bundle,
        metrics={**metrics, **tracked_report_metrics(report_dir / "evaluation.json")},
        params={
            **fitted["chosen"]["params"],
            "kind": fitted["chosen"]["kind"],
            "imbalance": fitted["chosen"]["imbalance"],
            "seed": params.seed,
        },
        tags={},
        artifacts=_register_artifacts(model_dir, report_dir),
        test_set_fingerprint=test_set,
    )


def _register_artifacts(model_dir: Path, report_dir: Path) -> dict[str, Path]:
    artifacts = {
        "report_json": report_dir / "evaluation.json",
        "report_html": report_dir / "evaluation.html",
        "fit_summary": model_dir / FIT_SUMMARY,
    }
    if (model_dir / REFERENCE_FILE).exists():
        artifacts["reference"] = model_dir / REFERENCE_FILE
    # training.validation.evaluate_and_validate writes it; logged as a folder:
    # validation/validation.{json,html,pdf} in the run.
    if (report_dir / "validation").is_dir():
        artifacts["validation"] = report_dir / "validation"
    return artifacts


def tracked_report_metrics(report_json: Path) -> dict[str, float]:
    """Global SHAP importance and fairness ratios as run metrics.

    As metrics (not only inside the report artifact) they line up across runs in MLflow's
    compare view and in `mlflow.search_runs`, which is how importance is tracked over time.
    """
    report = json.loads(report_json.read_text())
    out = {f"importance.{k}": float(v) for k, v in (report.get("importance") or {}).items()}
    attributes = (report.get("fairness") or {}).get("attributes") or {}
    for attr, table in attributes.items():
        ratio = table.get("disparate_impact")
        if ratio is not None:
            out[f"fairness.{attr}.disparate_impact"] = float(ratio)
    return out
