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
    cross_fit,
    evaluate,
    risk_bands,
    stack_of_best,
)
from training.model_matrix import model_matrix, monotone_constraints
from training.scoring_model import ScoringModel, load_bundle, save_bundle
from training.splits import Split, choose_splitter
from training.tuning import Converged, SearchSpace, TuningResult, tune

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
    """The `train` section of params.yaml (params.yaml says why each default)."""

    candidates: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"kind": "logistic", "imbalance": "class_weight"},
            {"kind": "xgboost", "imbalance": "class_weight"},
            {"kind": "xgboost", "imbalance": "smote"},
            {"kind": "lightgbm", "imbalance": "class_weight"},
        ]
    )
    tune_kinds: list[str] = field(default_factory=lambda: ["xgboost", "lightgbm"])
    tune_imbalances: list[str] = field(default_factory=lambda: ["none", "class_weight"])
    select_ks: list[int | None] = field(default_factory=lambda: [None])
    # A ceiling: tuning stops earlier once it converges (patience, min_improvement).
    n_trials: int = 12
    timeout_seconds: float = 300.0
    patience: int = 0
    min_improvement: float = 0.0005
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
    # auto: train+valid with cross-fitted calibration when the split is stratified, train
    # only (calibrated on valid) out of time; see final_fit_rows.
    final_fit: str = "auto"
    calibration_folds: int = 5
    # The stack of the comparison's best `stack_size` models (0: no stack), and whether it
    # may replace the tuned model when it scores a higher validation AUC.
    stack_size: int = 3
    stack_cv: int = 5
    stack_may_win: bool = False
    # Quality bars recorded on each version; the promotion gate refuses one that fails.
    gate_checks: dict[str, float] = field(default_factory=dict)
    # The baseline comparison: repeated stratified CV and bootstrap resamples of the test.
    compare_splits: int = 5
    compare_repeats: int = 2
    bootstrap: int = 1000

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


@dataclass(frozen=True)
class FinalSpec:
    """The model configuration that is refitted and shipped, and where it came from."""

    kind: str
    imbalance: str
    select_k: int | None
    params: dict[str, Any]
    source: str  # "tuned" or the stack's comparison name


@dataclass
class FinalFit:
    """The shipped estimator and calibrator, and the scores the threshold is chosen on."""

    estimator: Any
    calibrator: Any | None
    calibration: dict[str, Any]
    y: np.ndarray
    p: np.ndarray
    rows: str


def fit(dataset_dir: Path, out_dir: Path, params: TrainParams, study_path: Path) -> dict[str, Any]:
    """Tune, compare, refit, calibrate; write the bundle and what was decided."""
    started = time.perf_counter()
    data = prepare(dataset_dir, params)
    monotone = dict(zip(data.x.columns, monotone_constraints(list(data.x.columns)), strict=True))
    # One study per dataset: rerunning on the same data resumes it with more trials.
    study_name = f"collection-risk-{read_summary(dataset_dir).dataset_fingerprint[:12]}"
    tuning = _tune(data, params, monotone, study_path, study_name)
    comparison, spec = _compare(data, params, monotone, tuning.chosen)
    final = _final_fit(data, params, monotone, spec)
    threshold = choose_threshold(final.y, final.p, params.threshold_objective, params.costs)
    bands = risk_bands(final.p, params.band_quantiles)
    bundle = _bundle(dataset_dir, data, final, threshold, bands, spec)
    summary = {
        "splitter": data.splitter_kind,
        "rows": {"train": len(data.split.train), "valid": len(data.split.valid),
                 "test": len(data.split.test)},
        "comparison": comparison,
        "tuning": tuning.as_dict(),
        "chosen": asdict(spec),
        "calibration": final.calibration,
        "threshold": threshold,
        "threshold_rows": final.rows,
        "bands": {"low_max": bands[0], "medium_max": bands[1]},
        "valid": evaluate(final.y, final.p, threshold, bands),
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    _write_fit(out_dir, bundle, summary)
    write_reference(data, bundle, out_dir / REFERENCE_FILE, params.seed)
    return summary


def _compare(
    data: Prepared, params: TrainParams, monotone: dict[str, int], tuned: Any
) -> tuple[list[dict[str, Any]], FinalSpec]:
    """The configured candidates, the tuned model and the stack of the best of them, each
    fitted on train and scored on validation; which of tuned and stack is shipped."""
    x_tr, y_tr = data.x.iloc[data.split.train], data.y[data.split.train]
    x_va, y_va = data.x.iloc[data.split.valid], data.y[data.split.valid]
    tuned_row = Candidate(tuned.kind, tuned.imbalance, tuned.select_k, tuned.params, "tuned")
    candidates = [*(Candidate(**c) for c in params.candidates), tuned_row]
    rows = compare_candidates(candidates, x_tr, y_tr, x_va, y_va, monotone, params.seed)
    spec = FinalSpec(tuned.kind, tuned.imbalance, tuned.select_k, dict(tuned.params), "tuned")
    stack = stack_of_best(candidates, rows, params.stack_size, params.stack_cv)
    if stack is None:
        return rows, spec
    tuned_auc = rows[-1]["roc_auc"] or 0.0
    stack_row = compare_candidates([stack], x_tr, y_tr, x_va, y_va, monotone, params.seed)[0]
    rows.append(stack_row)
    if params.stack_may_win and (stack_row["roc_auc"] or 0.0) > tuned_auc:
        log.info("the stack beats the tuned model on validation AUC: it is shipped")
        spec = FinalSpec("stacking", "none", None, dict(stack.params), str(stack.name))
    return rows, spec


def final_fit_rows(params: TrainParams, splitter_kind: str) -> str:
    """ "train_valid" or "train": what the shipped model is fitted on.

    Out of time, validation holds the months just before the test months, whose labels
    mature after the test snapshot: fitting on them would use outcomes not yet known at
    that point in time, so out-of-time data keeps train-only fitting (auto) and refuses
    train_valid.
    """
    mode = params.final_fit
    if mode not in ("auto", "train", "train_valid"):
        raise ValueError(f"final_fit {mode!r}: expected auto, train or train_valid")
    if mode == "auto":
        return "train_valid" if splitter_kind == "stratified" else "train"
    if mode == "train_valid" and splitter_kind == "out_of_time":
        raise ValueError("final_fit train_valid needs a stratified split: out of time, "
                         "validation labels mature after the test snapshot")  # fmt: skip
    return mode


def _final_fit(
    data: Prepared, params: TrainParams, monotone: dict[str, int], spec: FinalSpec
) -> FinalFit:
    model = build_estimator(
        spec.kind, spec.params, spec.imbalance, monotone, spec.select_k, params.seed
    )
    if final_fit_rows(params, data.splitter_kind) == "train_valid":
        return _fit_train_valid(data, params, model)
    x_tr, y_tr = data.x.iloc[data.split.train], data.y[data.split.train]
    x_va, y_va = data.x.iloc[data.split.valid], data.y[data.split.valid]
    fit_with_eval_set(model, x_tr, y_tr, x_va, y_va)
    calibration = calibrate(model, x_va, y_va, seed=params.seed)
    return FinalFit(
        estimator=calibration.model,
        calibrator=None,
        calibration={"method": calibration.method, "brier": calibration.brier,
                     "fitted_on": "validation rows"},
        y=y_va,
        p=calibration.model.predict_proba(x_va)[:, 1],
        rows="validation",
    )  # fmt: skip


def _fit_train_valid(data: Prepared, params: TrainParams, model: Any) -> FinalFit:
    """Refit on train + validation; calibrator, threshold and bands from out-of-fold scores."""
    rows = np.sort(np.concatenate([data.split.train, data.split.valid]))
    frame = data.frame.iloc[rows].reset_index(drop=True)
    # Account-grouped, label-stratified folds, seeded apart from the split and the tuner.
    folds = choose_splitter(frame, seed=params.split_seed + 2).cv(frame, params.calibration_folds)
    x, y = data.x.iloc[rows].reset_index(drop=True), data.y[rows]
    fitted = cross_fit(model, x, y, folds, seed=params.seed)
    log.info("refitted on train + validation (%d rows), %d-fold cross-fitted calibration: %s",
             len(rows), len(folds), fitted.method)  # fmt: skip
    return FinalFit(
        estimator=fitted.model,
        calibrator=fitted.calibrator,
        calibration={"method": fitted.method, "brier": fitted.brier,
                     "fitted_on": f"out-of-fold scores, {len(folds)} folds of train + valid"},
        y=y,
        p=fitted.oof,
        rows=f"out-of-fold, train + valid ({len(rows)} rows)",
    )  # fmt: skip


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
) -> TuningResult:
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
        convergence=Converged(params.patience, params.min_improvement),
    )


def _bundle(
    dataset_dir: Path,
    data: Prepared,
    final: FinalFit,
    threshold: float,
    bands: tuple[float, float],
    spec: FinalSpec,
) -> ScoringModel:
    summary = read_summary(dataset_dir)
    return ScoringModel(
        estimator=final.estimator,
        calibrator=final.calibrator,
        threshold=float(threshold),
        low_max=float(bands[0]),
        medium_max=float(bands[1]),
        feature_columns=list(data.x.columns),
        feature_service=summary.service_name,
        definitions_fingerprint=summary.definitions_fingerprint,
        metadata={
            "calibration": final.calibration["method"],
            "calibration_fitted_on": final.calibration["fitted_on"],
            "data_fingerprint": summary.dataset_fingerprint,
            "kind": spec.kind,
            "imbalance": spec.imbalance,
            "source": spec.source,
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
        json.dumps(
            {
                "test_set_fingerprint": metrics["test_set_fingerprint"],
                "splitter": metrics["splitter"],
            }
        )
    )
    log.info("test metrics: %s", {k: round(v, 4) for k, v in flat.items()})
    return report


def register_model(model_dir: Path, report_dir: Path, params: TrainParams) -> Any:
    """Register the fitted bundle with its test metrics, report and gate checks; it becomes
    challenger when it passes them (else GateChecksFailed, the version kept as a record)."""
    from training.registry import quality_checks, register  # noqa: PLC0415

    bundle = load_bundle(model_dir / MODEL_FILE)
    metrics = json.loads((report_dir / "metrics.json").read_text())
    test_set = json.loads((report_dir / "test_set.json").read_text())
    fitted = json.loads((model_dir / FIT_SUMMARY).read_text())
    checks = quality_checks(metrics, params.gate_checks, str(test_set.get("splitter")))
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
        test_set_fingerprint=test_set["test_set_fingerprint"],
        checks=checks,
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
