"""Training at scale: fit time and peak memory per training-set size, Optuna trials per
minute, and batch-scoring throughput, each beside a bare-XGBoost floor.

Rows are the (account, snapshot) rows of a training set built the real way (generate ->
validate_raw -> build_features -> build_training_set through a temporary Feast repo),
cached in benchmarks/.cache/<accounts>/training/. A size takes whole accounts, in a fixed
shuffled order, from that set (the last one cut short); a size beyond the set stacks copies
of it with fresh account ids. Each result says which in `rows_source`.

Per size, one fresh spawned process runs the real path, then the floor:
- real: training.train.prepare (read, out-of-time split, model_matrix), then
  build_estimator("xgboost", defaults, "class_weight", monotone) fitted with early stopping
  on the validation rows, as train.fit refits its chosen model;
- floor: a bare xgboost.XGBClassifier with the settings the real fit's booster ended up with
  (its get_params(): the resolved hyperparameters, scale_pos_weight, monotone constraints,
  AUC early stopping), on the same training and validation matrices as NumPy arrays. The
  ratio is then what the real path adds around the same booster doing the same work.
Fits repeat, interleaved, and medians count. Peak RSS of the real path is that process's
high-water mark (VmHWM) after its first real fit; the floor's comes from a second fresh
process that loads only its matrix.

The first process then scores every row with training.batch_scoring.score_vectors (a calibrated
ScoringModel over the full-named feature frame, as Feast returns it) against the fitted
booster's predict_proba on the already-built matrix, splits the real call step by step,
and profiles it when it misses the aim. Tuning runs training.train._tune, the study
train.fit runs, for a fixed number of trials in one more fresh process.

    .venv/bin/python -m benchmarks.bench_training                     # 10k, 100k, 1M rows
    .venv/bin/python -m benchmarks.bench_training --sizes 10000,100000
    .venv/bin/python -m benchmarks.bench_training --quick             # 10k rows, < 2 min

Inputs: params.yaml of the checkout, checked first; the data are generated and the set built
here when the cache lacks them (its Feast repo is a throw-away one, project cwbench_<random>,
SQLite in memory). The JSON and tables are rewritten after each size and after tuning, and
once more however the run ends, with the stages not run marked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from benchmarks.common import (
    CACHE_ROOT,
    COMPARISON_HEADER,
    DEFAULT_ACCOUNTS,
    MONTHS,
    REPO_ROOT,
    Comparison,
    cache_dir,
    comparison_rows,
    log_table,
    parser,
    peak_rss_mib,
    prepare_raw,
    profile_top,
    setup_logging,
    temp_feast_store,
)
from benchmarks.harness import Progress, Table, require_file, run_main

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from training.batch_scoring import ScoreColumns
    from training.train import Prepared, TrainParams

log = logging.getLogger(__name__)

NAME = "training"
SIZES = (10_000, 100_000, 1_000_000)
# A quick run builds its own small set, so a cold cache still finishes in about a minute.
QUICK_SIZES = (10_000,)
QUICK_ACCOUNTS = 2_000
TUNE_ROWS, QUICK_TUNE_ROWS = 100_000, 10_000
# Pruning needs five completed trials (training.tuning.MIN_TRIALS_FOR_PRUNING); twenty give
# it room to act, six let a quick run see it once.
TRIALS, QUICK_TRIALS = 20, 6
# A fixed trial count is the measure; params.yaml's timeout would cut it short.
TUNE_TIMEOUT_SECONDS = 7_200.0
SCORE_REPEATS = 3
FIT_REPEATS = 3
SCORE_AIM_RATIO = 0.5
# Preparing and fitting a training set <= 1.5x the bare booster's fit on the same matrix.
FIT_AIM = "<= 1.5x"
SCORE_AIM = f">= {SCORE_AIM_RATIO}x"
KIND, IMBALANCE = "xgboost", "class_weight"
SHUFFLE_SEED = 11
MIB = 2**20
SETS_ROOT = CACHE_ROOT / "training_sets"
# Bump when a change the fingerprints cannot see should rebuild the cached sets.
SET_VERSION = 1
VERSIONED = ("xgboost", "lightgbm", "optuna", "scikit-learn", "imbalanced-learn", "pandas")
T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """common.time_once, keeping the result's type."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


# --- the real training set -------------------------------------------------------------------


@dataclass(frozen=True)
class RealSet:
    dataset_dir: Path
    accounts: int
    rows: int
    fingerprint: str
    build_seconds: dict[str, float]


def real_set(accounts: int, rebuild: bool) -> RealSet:
    """The training set of `accounts` x 24 months, built once the real way and reused."""
    generate_s, raw_dir = timed(lambda: prepare_raw(accounts, rebuild=rebuild))
    root = cache_dir(accounts) / "training"
    stamp = root / "stamp.json"
    wanted = set_fingerprint(raw_dir)
    if rebuild or not _stamp_matches(stamp, wanted):
        _build_real_set(raw_dir, root, stamp, wanted)
    info = json.loads(stamp.read_text())
    seconds = {"generate_this_run": round(generate_s, 1), **info["seconds"]}
    return RealSet(root / "dataset", accounts, info["rows"], wanted, seconds)


def set_fingerprint(raw_dir: Path) -> str:
    """Changes with the raw data, the feature SQL or the model's columns."""
    from feature_repo import transformations as tx  # noqa: PLC0415
    from training.model_matrix import model_columns  # noqa: PLC0415

    digest = hashlib.sha256(f"v{SET_VERSION}".encode())
    for sql in (*tx.FEATURE_STATEMENTS, tx.DERIVED_LABELS_SQL, tx.OBSERVED_LABELS_SQL):
        digest.update(sql.encode())
    digest.update((raw_dir / "_manifest.json").read_bytes())
    digest.update("\n".join(model_columns()).encode())
    return digest.hexdigest()


def _stamp_matches(stamp: Path, fingerprint: str) -> bool:
    return stamp.exists() and json.loads(stamp.read_text()).get("fingerprint") == fingerprint


def _build_real_set(raw_dir: Path, root: Path, stamp: Path, fingerprint: str) -> None:
    from ingestion.features import build_features  # noqa: PLC0415
    from ingestion.validate import validate_raw  # noqa: PLC0415

    # Without the stamp a build stopped halfway is never mistaken for a finished one.
    stamp.unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    validated, features = root / "validated", root / "features"
    log.info("validating %s into %s", raw_dir, validated)
    seconds = {
        "validate": timed(
            lambda: validate_raw(raw_dir, validated, root / "quarantine", root / "reports")
        )[0]
    }
    seconds["features"] = timed(lambda: build_features(validated, features))[0]
    seconds["training_set"], rows = timed(lambda: _training_set(root, raw_dir))
    rounded = {k: round(v, 1) for k, v in seconds.items()}
    log.info("real training set: %s rows; build seconds %s", f"{rows:,}", rounded)
    stamp.write_text(json.dumps({"fingerprint": fingerprint, "rows": rows, "seconds": rounded}))


def _training_set(root: Path, raw_dir: Path) -> int:
    from training.dataset import build_training_set  # noqa: PLC0415

    project = f"cwbench_{uuid.uuid4().hex[:10]}"
    # build_training_set reads only the offline store; the online store is a formality.
    online = {"type": "sqlite", "path": ":memory:"}
    with temp_feast_store(root / "features", online, project) as t:
        summary = build_training_set(
            t.store,
            root / "features",
            root / "validated",
            root / "dataset",
            oracle_dir=raw_dir / "_oracle",
        )
    return summary.rows


# --- sets of a given size ------------------------------------------------------------------


@dataclass(frozen=True)
class SizedSet:
    rows: int
    dataset_dir: Path
    rows_source: str


def sized_set(real: RealSet, rows: int) -> SizedSet:
    """`rows` rows of whole accounts from the real set (stacked copies beyond its size)."""
    out = SETS_ROOT / str(rows)
    source = out / "source.json"
    key = {"real": real.fingerprint, "rows": rows, "seed": SHUFFLE_SEED}
    if not (source.exists() and json.loads(source.read_text()).get("key") == key):
        _write_sized_set(real, rows, out, key)
    return SizedSet(rows, out, json.loads(source.read_text())["rows_source"])


def _write_sized_set(real: RealSet, rows: int, out: Path, key: dict[str, Any]) -> None:
    from training.dataset import DATASET_FILE, read_dataset  # noqa: PLC0415

    frame = read_dataset(real.dataset_dir)
    copies = -(-rows // len(frame))
    picked, accounts = _take_accounts(_stack(frame, copies), rows)
    how = "real" if copies == 1 else f"stacked: {copies} copies with fresh account ids"
    rows_source = (
        f"{how}; {len(picked):,} rows of {accounts:,} whole accounts (shuffled, the last cut "
        f"short) from a {len(frame):,}-row training set built by generate -> validate_raw -> "
        f"build_features -> build_training_set from {real.accounts:,} accounts x {MONTHS} months"
    )
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    picked.to_parquet(tmp / DATASET_FILE, index=False)
    (tmp / "source.json").write_text(json.dumps({"key": key, "rows_source": rows_source}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    log.info("%s rows -> %s (%s)", f"{rows:,}", out, how)


def _stack(frame: pd.DataFrame, copies: int) -> pd.DataFrame:
    import pandas as pd  # noqa: PLC0415

    if copies == 1:
        return frame
    # Fresh ids hash to fresh split buckets, so copies spread over train, valid and test.
    parts = [frame] + [
        frame.assign(
            account_id=frame["account_id"] + f"-{k}", customer_id=frame["customer_id"] + f"-{k}"
        )
        for k in range(1, copies)
    ]
    return pd.concat(parts, ignore_index=True)


def _take_accounts(frame: pd.DataFrame, rows: int) -> tuple[pd.DataFrame, int]:
    """The first `rows` rows of accounts in a fixed shuffled order, in the builder's order."""
    import numpy as np  # noqa: PLC0415

    codes, uniques = frame["account_id"].factorize()
    rank = np.random.default_rng(SHUFFLE_SEED).permutation(len(uniques))[codes]
    order = np.lexsort((frame["event_timestamp"].to_numpy(), rank))[:rows]
    picked = frame.iloc[order].sort_values(["event_timestamp", "account_id"], kind="stable")
    return picked.reset_index(drop=True), int(picked["account_id"].nunique())


# --- fresh processes -------------------------------------------------------------------------


def in_fresh_process(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) in a new spawned interpreter: its peak RSS is its own."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


def rss_mib() -> float:
    import psutil  # noqa: PLC0415

    return float(psutil.Process().memory_info().rss / MIB)


def train_params(raw: dict[str, Any]) -> TrainParams:
    from training.train import TrainParams  # noqa: PLC0415

    return TrainParams.from_dict(raw)


def load_train_params() -> dict[str, Any]:
    import yaml  # noqa: PLC0415

    path = require_file(REPO_ROOT / "params.yaml", "run the benchmark from a Collectwise checkout")
    params: dict[str, Any] = yaml.safe_load(path.read_text())["train"]
    return params


# --- one size, in its own process: real fit, floor fit, scoring -----------------------------


@dataclass(frozen=True)
class SizeJob:
    rows: int
    dataset_dir: str
    scratch: str
    params: dict[str, Any]
    repeats: int
    fit_repeats: int
    profile: bool


@dataclass
class RealFit:
    data: Prepared
    model: Any
    x_train: pd.DataFrame
    y_train: np.ndarray
    seconds: dict[str, Any]
    booster_settings: dict[str, Any]


def size_child(job: SizeJob) -> dict[str, Any]:
    """Real fit, floor fit and scoring at one size, in a fresh process (in_fresh_process).

    The floor's matrices are left in job.scratch for floor_child, which the parent runs next.
    """
    setup_logging()
    params = train_params(job.params)
    warm_up_s = _warm_up()
    baseline = rss_mib()
    real, fits = paired_fits(Path(job.dataset_dir), params, job.fit_repeats)
    fits["real"]["rss_after_imports_mib"] = baseline
    save_floor_matrices(real, Path(job.scratch))
    return {
        "rows": job.rows,
        "fit_rows": len(real.y_train),
        "valid_rows": len(real.data.split.valid),
        "test_rows": len(real.data.split.test),
        "model_columns": real.data.x.shape[1],
        "positives_share_fit": round(float(real.y_train.mean()), 4),
        "imports_and_layout_s": round(warm_up_s, 2),
        **fits,
        "scoring": scoring(real, params, job.repeats, job.profile),
        # Other work on the machine moves the figures; this says how much there was.
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }


def paired_fits(
    dataset_dir: Path, params: TrainParams, repeats: int
) -> tuple[RealFit, dict[str, Any]]:
    """Real fit then floor fit, `repeats` times interleaved so load from elsewhere hits
    both; medians count. Peak RSS is read after the first real fit, before any floor."""
    real = real_fit(dataset_dir, params)
    peak = peak_rss_mib()
    runs, floors = [real.seconds], [floor_fit(real)]
    for _ in range(repeats - 1):
        del real  # the previous run's frames go before the next run allocates its own
        real = real_fit(dataset_dir, params)
        runs.append(real.seconds)
        floors.append(floor_fit(real))
    medians = {k: statistics.median(r[k] for r in runs) for k in ("prepare_s", "fit_s", "total_s")}
    return real, {
        "real": {**runs[0], **medians, "runs": runs, "peak_rss_mib": peak},
        "floor": {**floors[0], "fit_s": statistics.median(f["fit_s"] for f in floors),
                  "runs": [f["fit_s"] for f in floors]},
    }  # fmt: skip


def _warm_up() -> float:
    """Imports and the feature layout (which imports Feast) once, outside every clock: a
    training process pays them once whatever the size."""
    started = time.perf_counter()
    import training.train  # noqa: F401, PLC0415
    from training.model_matrix import model_columns  # noqa: PLC0415

    model_columns()
    return time.perf_counter() - started


def real_fit(dataset_dir: Path, params: TrainParams) -> RealFit:
    """prepare, then the chosen kind fitted as train.fit refits it (early stopping on valid)."""
    from training.estimators import build_estimator, fit_with_eval_set  # noqa: PLC0415
    from training.model_matrix import monotone_constraints  # noqa: PLC0415
    from training.train import prepare  # noqa: PLC0415

    started = time.perf_counter()
    data = prepare(dataset_dir, params)
    prepared = time.perf_counter()
    x_tr, y_tr = data.x.iloc[data.split.train], data.y[data.split.train]
    x_va, y_va = data.x.iloc[data.split.valid], data.y[data.split.valid]
    columns = list(data.x.columns)
    monotone = dict(zip(columns, monotone_constraints(columns), strict=True))
    model = build_estimator(KIND, None, IMBALANCE, monotone, None, params.seed)
    fit_with_eval_set(model, x_tr, y_tr, x_va, y_va)
    done = time.perf_counter()
    booster = model.steps[-1][1]
    settings = booster_settings(booster.estimator_)
    seconds = {
        "prepare_s": prepared - started,
        "fit_s": done - prepared,
        "total_s": done - started,
        "rounds": int(booster.estimator_.get_booster().num_boosted_rounds()),
        "best_rounds": booster.best_iteration_,
    }
    log.info("real: prepare %.1fs, fit %.1fs", seconds["prepare_s"], seconds["fit_s"])
    return RealFit(data, model, x_tr, y_tr, seconds, settings)


def booster_settings(estimator: Any) -> dict[str, Any]:
    """The fitted XGBClassifier's constructor arguments, unset ones left out (None or NaN are
    its defaults), so a bare XGBClassifier(**settings) does the same work."""
    import math  # noqa: PLC0415

    return {
        k: v
        for k, v in estimator.get_params().items()
        if v is not None and not (isinstance(v, float) and math.isnan(v))
    }


def floor_fit(real: RealFit) -> dict[str, Any]:
    """Bare XGBoost with the real booster's settings on the same matrices as NumPy."""
    seconds, rounds = bare_fit(*floor_matrices(real), real.booster_settings)
    if rounds != real.seconds["rounds"]:
        # Same data, settings and seed should stop at the same round; say so if not.
        log.warning("floor ran %d rounds, the real fit %d", rounds, real.seconds["rounds"])
    log.info("floor: %d rounds in %.1fs (real fit %.1fs)", rounds, seconds, real.seconds["fit_s"])
    return {"fit_s": seconds, "rounds": rounds, "settings": real.booster_settings}


def floor_matrices(real: RealFit) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training and validation rows as the contiguous float64 arrays a bare fit is given."""
    import numpy as np  # noqa: PLC0415

    valid = real.data.split.valid
    return (
        np.ascontiguousarray(real.x_train.to_numpy(dtype=np.float64)),
        np.asarray(real.y_train),
        np.ascontiguousarray(real.data.x.iloc[valid].to_numpy(dtype=np.float64)),
        np.asarray(real.data.y[valid]),
    )


FLOOR_FILES = ("x.npy", "y.npy", "x_valid.npy", "y_valid.npy")


def save_floor_matrices(real: RealFit, scratch: Path) -> None:
    """For floor_child, which the parent runs in a fresh process after this one."""
    import numpy as np  # noqa: PLC0415

    for name, array in zip(FLOOR_FILES, floor_matrices(real), strict=True):
        np.save(scratch / name, array)


def bare_fit(
    x: np.ndarray,
    y: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    settings: dict[str, Any],
) -> tuple[float, int]:
    """Seconds and rounds of XGBClassifier(**settings) fitted with the validation rows as its
    eval set (early stopping, when the settings ask for it, watches them as the real fit's does)."""
    import xgboost  # noqa: PLC0415

    model = xgboost.XGBClassifier(**settings)
    seconds = timed(lambda: model.fit(x, y, eval_set=[(x_valid, y_valid)], verbose=False))[0]
    return seconds, int(model.get_booster().num_boosted_rounds())


def floor_child(scratch: str, settings: dict[str, Any]) -> dict[str, float]:
    """The floor alone in a fresh process (NumPy, XGBoost, its matrices from disk, one fit):
    the peak RSS the floor needs, without the real path's frames around it."""
    import numpy as np  # noqa: PLC0415
    import xgboost  # noqa: F401, PLC0415

    baseline = rss_mib()
    x, y, x_valid, y_valid = (np.load(Path(scratch) / name) for name in FLOOR_FILES)
    seconds, _ = bare_fit(x, y, x_valid, y_valid, settings)
    return {"fit_s": seconds, "rss_after_imports_mib": baseline, "peak_rss_mib": peak_rss_mib()}


# --- scoring ---------------------------------------------------------------------------------


@dataclass
class ScoringInputs:
    bundle: Any
    vectors: pd.DataFrame
    matrix: np.ndarray
    booster: Any
    rounds: int


def scoring(real: RealFit, params: TrainParams, repeats: int, profile: bool) -> dict[str, Any]:
    """score_vectors on every row against the bare booster on the built matrix."""
    inputs = scoring_inputs(real, params)
    cases = scoring_cases(inputs)
    for warm_up in cases.values():
        warm_up()  # first calls pay lazy set-up (DMatrix code paths, caches)
    timings: dict[str, list[float]] = {case: [] for case in cases}
    # Interleaved rounds, so that load from elsewhere on the machine hits every path.
    for _ in range(repeats):
        for case, fn in cases.items():
            timings[case].append(timed(fn)[0])
    medians = {case: statistics.median(v) for case, v in timings.items()}
    result: dict[str, Any] = {"rows": len(inputs.vectors), "timings": timings, "medians": medians}
    result["split"] = real_split(inputs, repeats)
    ratio = medians["floor_predict_proba"] / medians["real_score_vectors"]
    result["ratio_rows_per_s"] = ratio
    log.info("score-batch: real/floor rows/s %.2fx", ratio)
    if profile and ratio < SCORE_AIM_RATIO:
        result["profile"] = profile_top(cases["real_score_vectors"])
    return result


def scoring_inputs(real: RealFit, params: TrainParams) -> ScoringInputs:
    """A ScoringModel built as train.fit builds it (calibrated on valid, threshold, bands)."""
    import numpy as np  # noqa: PLC0415

    from feature_repo.feature_services import COLLECTION_RISK_V1  # noqa: PLC0415
    from training.evaluate import calibrate, choose_threshold, risk_bands  # noqa: PLC0415
    from training.scoring_model import ScoringModel  # noqa: PLC0415

    data = real.data
    x_va, y_va = data.x.iloc[data.split.valid], data.y[data.split.valid]
    calibration = calibrate(real.model, x_va, y_va, seed=params.seed)
    p_valid = calibration.model.predict_proba(x_va)[:, 1]
    threshold = choose_threshold(y_va, p_valid, params.threshold_objective, params.costs)
    low_max, medium_max = risk_bands(p_valid, params.band_quantiles)
    bundle = ScoringModel(
        estimator=calibration.model,
        calibrator=None,
        threshold=float(threshold),
        low_max=float(low_max),
        medium_max=float(medium_max),
        feature_columns=list(data.x.columns),
        feature_service=COLLECTION_RISK_V1,
        definitions_fingerprint="benchmark",
        metadata={"calibration": calibration.method},
    )
    booster = real.model.steps[-1][1]
    matrix = np.ascontiguousarray(data.x.to_numpy(dtype=np.float64))
    rounds = booster.best_iteration_ or real.seconds["rounds"]
    return ScoringInputs(bundle, feast_vectors(data.frame), matrix, booster.estimator_, rounds)


def feast_vectors(frame: pd.DataFrame) -> pd.DataFrame:
    """The training frame as get_historical_features returns it: no label, no
    evaluation-only columns."""
    drop = [
        c for c in frame.columns if c == "default_30d" or c.startswith(("protected__", "oracle__"))
    ]
    return frame.drop(columns=drop)


def scoring_cases(inputs: ScoringInputs) -> dict[str, Callable[[], object]]:
    from training.batch_scoring import score_vectors  # noqa: PLC0415

    booster, matrix = inputs.booster, inputs.matrix
    # inplace_predict uses every tree unless told; the classifier stops at the best round.
    iterations = (0, int(inputs.rounds))
    return {
        "real_score_vectors": lambda: score_vectors(inputs.bundle, inputs.vectors),
        "floor_predict_proba": lambda: booster.predict_proba(matrix),
        "floor_inplace_predict": lambda: booster.get_booster().inplace_predict(
            matrix, iteration_range=iterations
        ),
    }


def real_split(inputs: ScoringInputs, repeats: int) -> dict[str, float]:
    """Median seconds per step of score_vectors, run step by step as training/batch_scoring.py and
    ScoringModel.score run them. It mirrors their code, so `steps_sum_s` is reported beside
    the real call's median: a gap says the mirror no longer matches."""
    samples = [_split_once(inputs) for _ in range(repeats)]
    return {k: statistics.median(sample[k] for sample in samples) for k in samples[0]}


def _split_once(inputs: ScoringInputs) -> dict[str, float]:
    import numpy as np  # noqa: PLC0415

    from training.batch_scoring import (  # noqa: PLC0415
        NO_FEATURES,
        SCORE_CHUNK_ROWS,
        ScoreColumns,
        has_features,
    )

    vectors, steps = inputs.vectors, dict.fromkeys(SPLIT_KEYS[:-1], 0.0)

    def step(name: str, fn: Callable[[], T]) -> T:
        seconds, value = timed(fn)
        steps[name] += seconds
        return value

    known = step("known_mask", lambda: has_features(vectors))
    out = step("result_arrays_init", lambda: ScoreColumns(len(vectors), NO_FEATURES))
    rows = np.flatnonzero(known)
    for start in range(0, len(rows), SCORE_CHUNK_ROWS):
        _split_chunk(inputs, rows[start : start + SCORE_CHUNK_ROWS], out, step)
    step("result_frame", lambda: out.frame(vectors["account_id"].astype(str)))
    booster_s = steps.pop("of_which_xgboost_on_dataframe")
    steps["steps_sum_s"] = sum(steps.values())
    steps["of_which_xgboost_on_dataframe"] = booster_s
    return steps


def _split_chunk(
    inputs: ScoringInputs, part: np.ndarray, out: ScoreColumns, step: Callable[..., Any]
) -> None:
    """One chunk's steps, as score_vectors' loop runs them."""
    import numpy as np  # noqa: PLC0415

    from training.model_matrix import model_matrix  # noqa: PLC0415

    bundle = inputs.bundle
    whole = len(part) == len(inputs.vectors)
    subset = step("take_chunk_rows", lambda: inputs.vectors if whole else inputs.vectors.iloc[part])
    x = step("model_matrix", lambda: model_matrix(subset))
    selected = step("bundle_matrix_select_astype", lambda: bundle.matrix(x))
    p = step("calibrated_predict_proba", lambda: bundle.estimator.predict_proba(selected))
    scored = step("bands_and_score_frame", lambda: _score_frame(bundle, np.asarray(p)[:, 1], x))
    step("write_back", lambda: out.put(part, scored, "scored"))
    # Inside calibrated_predict_proba: the booster alone on the same DataFrame; the rest of
    # that step is the calibrator and the pipeline around it.
    step("of_which_xgboost_on_dataframe", lambda: inputs.booster.predict_proba(selected))


def _score_frame(bundle: Any, p: np.ndarray, x: pd.DataFrame) -> pd.DataFrame:
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    p = np.clip(p, 0.0, 1.0)
    return pd.DataFrame(
        {"probability": p, "band": bundle.bands(p), "decision": p >= bundle.threshold},
        index=x.index,
    )


# --- tuning, in its own process ----------------------------------------------------------------


def tune_child(dataset_dir: str, scratch: str, raw_params: dict[str, Any], trials: int) -> Any:
    """training.train._tune, the study train.fit runs, for exactly `trials` trials."""
    import optuna  # noqa: PLC0415

    from training.model_matrix import monotone_constraints  # noqa: PLC0415
    from training.train import _tune, prepare  # noqa: PLC0415

    setup_logging()
    _warm_up()
    params = replace(
        train_params(raw_params), n_trials=trials, timeout_seconds=TUNE_TIMEOUT_SECONDS
    )
    data = prepare(Path(dataset_dir), params)
    columns = list(data.x.columns)
    monotone = dict(zip(columns, monotone_constraints(columns), strict=True))
    storage, name = Path(scratch) / "study.db", f"bench-{uuid.uuid4().hex[:8]}"
    seconds, result = timed(lambda: _tune(data, params, monotone, storage, name))
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{storage}")
    return tuning_summary(study, seconds, len(data.split.train), params, result.chosen)


def tuning_summary(
    study: Any, seconds: float, rows: int, params: TrainParams, chosen: Any
) -> dict[str, Any]:
    trials = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "kind": t.params.get("kind"),
            "imbalance": t.params.get("imbalance"),
            "folds_run": len(t.user_attrs.get("running_auc", [])),
            "seconds": t.duration.total_seconds() if t.duration else None,
        }
        for t in study.get_trials(deepcopy=False)
    ]
    states = [t["state"] for t in trials]
    return {
        "fit_rows": rows,
        "cv_splits": params.cv_splits,
        "space": {"kinds": params.tune_kinds, "imbalances": params.tune_imbalances},
        "trials": len(trials),
        "counts": {s: states.count(s) for s in sorted(set(states))},
        "seconds": seconds,
        "trials_per_minute": 60.0 * len(trials) / seconds,
        "pruned_share": states.count("pruned") / max(len(trials), 1),
        "chosen": {"number": chosen.number, "kind": chosen.kind, "auc": chosen.auc},
        "per_trial": trials,
    }


# --- running and reporting ---------------------------------------------------------------------


def measure_size(sized: SizedSet, args: Any, raw_params: dict[str, Any]) -> dict[str, Any]:
    log.info("size %s: fresh process for fit, floor and scoring", f"{sized.rows:,}")
    with tempfile.TemporaryDirectory(prefix="train-", dir=CACHE_ROOT) as scratch:
        job = SizeJob(
            sized.rows,
            str(sized.dataset_dir),
            scratch,
            raw_params,
            args.repeats,
            args.fit_repeats,
            args.profile,
        )
        result = in_fresh_process(size_child, job)
        floor = result["floor"]
        log.info("size %s: the floor alone in a fresh process", f"{sized.rows:,}")
        floor["alone"] = in_fresh_process(floor_child, scratch, floor["settings"])
    return {**result, "rows_source": sized.rows_source}


def measure_tuning(sized: SizedSet, raw_params: dict[str, Any], trials: int) -> dict[str, Any]:
    log.info("tuning: %d trials on %s rows in a fresh process", trials, f"{sized.rows:,}")
    with tempfile.TemporaryDirectory(prefix="tune-", dir=CACHE_ROOT) as scratch:
        result = in_fresh_process(tune_child, str(sized.dataset_dir), scratch, raw_params, trials)
    return {**result, "rows": sized.rows, "rows_source": sized.rows_source}


def comparisons(sizes: Sequence[dict[str, Any]]) -> list[Comparison]:
    items: list[Comparison] = []
    for r in sizes:
        real, floor, fit_rows = r["real"], r["floor"], r["fit_rows"]
        items.append(
            Comparison(
                benchmark=NAME,
                case=f"prepare + fit, {r['rows']:,} rows ({fit_rows:,} fit)",
                real_seconds=real["total_s"],
                floor_seconds=floor["fit_s"],
                real_rate=fit_rows / real["total_s"],
                floor_rate=fit_rows / floor["fit_s"],
                rate_unit="fit rows/s",
                ratio=real["total_s"] / floor["fit_s"],
                aim=FIT_AIM,
                profile={
                    "what": "the real path's prepare and fit beside the floor's fit (medians)",
                    "stage_unit": "s",
                    "stages": [
                        ["real: prepare (read, split, model_matrix)", real["prepare_s"]],
                        [f"real: fit ({real['rounds']} rounds, early stopping)", real["fit_s"]],
                        ["floor: bare XGBClassifier, same settings and eval set", floor["fit_s"]],
                    ],
                },
                tried=FIT_TRIED,
            )
        )
        items += scoring_comparisons(r["scoring"])
    return items


def scoring_comparisons(s: dict[str, Any]) -> list[Comparison]:
    m, rows = s["medians"], s["rows"]
    real = m["real_score_vectors"]
    return [
        Comparison(
            benchmark=NAME,
            case=f"score_vectors vs {label}, {rows:,} rows",
            real_seconds=real,
            floor_seconds=m[key],
            real_rate=rows / real,
            floor_rate=rows / m[key],
            rate_unit="rows/s",
            ratio=m[key] / real,
            ratio_kind="real/floor rows/s",
            aim=aim,
            profile={
                "what": "score_vectors step by step (medians)"
                + ("; cProfile of one more call" if s.get("profile") else ""),
                "stage_unit": "s",
                "stages": [[step, seconds] for step, seconds in s.get("split", {}).items()],
                **s.get("profile", {}),
            },
            tried=SCORE_TRIED,
        )
        for key, label, aim in (
            ("floor_predict_proba", "predict_proba", SCORE_AIM),
            ("floor_inplace_predict", "inplace_predict", ""),
        )
    ]


FIT_TRIED = (
    "train.prepare builds the model matrix once; full-history array columns convert in one "
    "call (1a568c9); the fit is the estimator train.fit refits, so the ratio is the real "
    "path's overhead around the same booster.",
    "The floor was a bare XGBClassifier with only max_depth and the rounds in common (default "
    "learning rate, no subsampling, class weight, monotone constraints or eval set): at 1M rows "
    "it fitted in 9.4 s where the same booster with the real fit's settings and eval set took "
    "15.6 s and the real fit 15.2 s. The floor now takes the real booster's get_params(), so "
    "the ratio counts the real path's own work (prepare, frames around the fit) only.",
)
SCORE_TRIED = (
    "The scoring fast path: booster and calibrator called directly where verified equal to "
    "the sklearn chain, no matrix copies when the input already is the model matrix (aa0b866).",
    "score_vectors scores 65,536 rows at a time (training.batch_scoring.SCORE_CHUNK_ROWS). "
    "At 1M rows one pass built a 360 MB matrix in fresh pages after the floor freed its own: "
    "4.2 s against 3.2 s chunked (chunks of 16,384: 3.4 s; 131,072: 3.1 s), floor 1.9 s.",
    "Not kept, measured at 1M rows: a column-major model matrix (assembly 0.15 s faster, "
    "predict the same; not worth a layout change every consumer would see); the array "
    "features through Arrow (0.09 s a column against 0.15 s for NumPy arrays, but 0.28 s "
    "against 0.18 s for lists); switching the garbage collector off (no collection ran "
    "during a call).",
    "At 10k rows the fixed costs dominate: model_matrix 6 ms (25 inputs, 3 array "
    "features) and the calibrator 1-3 ms beside a 9 ms predict.",
)


def report(
    sizes: list[dict[str, Any]], tuning: dict[str, Any] | None, items: list[Comparison]
) -> None:
    log_table(*fit_table(sizes))
    report_scoring(sizes)
    if tuning:
        report_tuning(tuning)
    log_table("ratio", COMPARISON_HEADER, comparison_rows(items))


def fit_table(sizes: list[dict[str, Any]]) -> Table:
    return (
        f"fit {KIND}/{IMBALANCE}, medians (real: prepare + fit, early stopping on valid; "
        "floor: bare XGBClassifier, the real booster's settings and eval set)",
        ("rows", "fit rows", "rounds", "prepare s", "fit s", "real s", "floor s", "real/floor",
         "fit/floor", "real peak MiB", "real base MiB", "floor peak MiB", "floor base MiB"),
        [fit_row(r) for r in sizes],
    )  # fmt: skip


def fit_row(r: dict[str, Any]) -> list[object]:
    real, floor = r["real"], r["floor"]
    return [
        r["rows"], r["fit_rows"], real["rounds"], real["prepare_s"], real["fit_s"],
        real["total_s"], floor["fit_s"], f"{real['total_s'] / floor['fit_s']:.2f}x",
        f"{real['fit_s'] / floor['fit_s']:.2f}x", real["peak_rss_mib"],
        real["rss_after_imports_mib"], floor["alone"]["peak_rss_mib"],
        floor["alone"]["rss_after_imports_mib"],
    ]  # fmt: skip


def report_scoring(sizes: list[dict[str, Any]]) -> None:
    rates = []
    for r in sizes:
        s = r["scoring"]
        m, n = s["medians"], s["rows"]
        rates.append(
            [n, n / m["real_score_vectors"], n / m["floor_predict_proba"],
             n / m["floor_inplace_predict"], f"{s['ratio_rows_per_s']:.2f}x"]
        )  # fmt: skip
    log_table(
        "score-batch rows/s, medians: training.batch_scoring.score_vectors vs the bare booster",
        ("rows", "score_vectors", "predict_proba (NumPy)", "inplace_predict", "ratio"),
        rates,
    )
    log_table(
        "score_vectors step by step, median s (mirrors batch_scoring.py and ScoringModel.score; "
        "xgb part: the booster alone on the same frame, inside predict)",
        ("rows", *SPLIT_LABELS, "real call"),
        [
            [r["rows"], *(r["scoring"]["split"][k] for k in SPLIT_KEYS),
             r["scoring"]["medians"]["real_score_vectors"]]
            for r in sizes
        ],
    )  # fmt: skip
    for r in sizes:
        if r["scoring"].get("profile"):
            log_profile(r["rows"], r["scoring"]["profile"])


SPLIT_COLUMNS = {
    "known_mask": "known",
    "result_arrays_init": "init",
    "take_chunk_rows": "take",
    "model_matrix": "matrix",
    "bundle_matrix_select_astype": "select",
    "calibrated_predict_proba": "predict",
    "bands_and_score_frame": "bands",
    "write_back": "write",
    "result_frame": "frame",
    "of_which_xgboost_on_dataframe": "xgb part",
    "steps_sum_s": "sum",
}
SPLIT_KEYS, SPLIT_LABELS = tuple(SPLIT_COLUMNS), tuple(SPLIT_COLUMNS.values())


def log_profile(rows: int, profile: dict[str, list[dict[str, Any]]]) -> None:
    for key, order in (("by_own_time", "own"), ("by_cumulative_time", "cumulative")):
        log_table(
            f"cProfile of score_vectors on {rows:,} rows, top 10 by {order} time",
            ("function", "calls", "own s", "cumulative s"),
            [[p["function"], p["calls"], p["own_s"], p["cumulative_s"]] for p in profile[key]],
        )


def report_tuning(t: dict[str, Any]) -> None:
    counts = t["counts"]
    log_table(
        f"tuning: training.train._tune, {t['cv_splits']} folds, kinds {t['space']['kinds']}",
        ("rows", "fit rows", "trials", "complete", "pruned", "failed", "wall s", "trials/min",
         "pruned share"),
        [[t["rows"], t["fit_rows"], t["trials"], counts.get("complete", 0),
          counts.get("pruned", 0), counts.get("fail", 0), t["seconds"],
          t["trials_per_minute"], t["pruned_share"]]],
    )  # fmt: skip


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for package in VERSIONED:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def cli(argv: list[str] | None) -> Any:
    p = parser(__doc__ or NAME)
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="training-set rows")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_SIZES[0]:,} rows of a {QUICK_ACCOUNTS:,}-account set",
    )
    p.add_argument("--trials", type=int, default=None, help=f"tuning trials ({TRIALS})")
    p.add_argument("--tune-rows", type=int, default=None, help=f"tuning set ({TUNE_ROWS:,})")
    p.add_argument("--no-tune", action="store_true", help="skip the tuning measurement")
    p.add_argument("--repeats", type=int, default=SCORE_REPEATS, help="scoring runs per path")
    p.add_argument("--fit-repeats", type=int, default=None, help=f"fits per path ({FIT_REPEATS})")
    p.add_argument("--no-profile", dest="profile", action="store_false")
    args = p.parse_args(argv)
    args.sizes = list(QUICK_SIZES) if args.quick else [int(s) for s in args.sizes.split(",")]
    args.trials = args.trials or (QUICK_TRIALS if args.quick else TRIALS)
    # A quick run is a smoke test: one fit per path keeps it short on a busy machine.
    args.fit_repeats = args.fit_repeats or (1 if args.quick else FIT_REPEATS)
    args.tune_rows = args.tune_rows or (QUICK_TUNE_ROWS if args.quick else TUNE_ROWS)
    if args.quick and args.accounts == DEFAULT_ACCOUNTS:
        args.accounts = QUICK_ACCOUNTS
    return args


def stage_names(args: Any) -> list[str]:
    sizes = [f"size {rows:,}" for rows in args.sizes]
    return ["training set", *sizes, *([] if args.no_tune else ["tuning"])]


def run(args: Any) -> None:
    load_start = [round(x, 2) for x in os.getloadavg()]
    raw_params = load_train_params()
    with Progress(NAME, stage_names(args)) as progress:
        sizes: list[dict[str, Any]] = []
        progress.tables = lambda: [fit_table(sizes)] if sizes else []
        payload = progress.payload
        payload |= {
            "model": {
                "kind": KIND,
                "imbalance": IMBALANCE,
                "params": "training.estimators defaults",
            },
            "load_average_at_start": load_start,
            "library_versions": versions(),
            "sizes": sizes,
            "tuning": None,
        }
        with progress.stage("training set"):
            real = real_set(args.accounts, args.rebuild_cache)
            wanted = sorted({*args.sizes, *([] if args.no_tune else [args.tune_rows])})
            sets = {rows: sized_set(real, rows) for rows in wanted}
        payload |= {
            "accounts": real.accounts,
            "real_set_rows": real.rows,
            "real_set_build_seconds": real.build_seconds,
        }
        for rows in args.sizes:
            with progress.stage(f"size {rows:,}"):
                sizes.append(measure_size(sets[rows], args, raw_params))
                progress.comparisons[:] = comparisons(sizes)
        if not args.no_tune:
            with progress.stage("tuning"):
                payload["tuning"] = measure_tuning(sets[args.tune_rows], raw_params, args.trials)
        report(sizes, payload["tuning"], progress.comparisons)


def main(argv: list[str] | None = None) -> None:
    args = cli(argv)
    setup_logging()
    run_main(lambda: run(args))


if __name__ == "__main__":
    main()
