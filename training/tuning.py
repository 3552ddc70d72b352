"""Multi-objective hyperparameter search with Optuna.

Two objectives, both averaged over the given cross-validation folds:
- ROC AUC (maximise): the ranking quality the collection queue depends on;
- expected cost per account (minimise) at the cheapest threshold on the fold's validation
  rows, with the cost matrix of training.evaluate (DEFAULT_COSTS unless given). The
  threshold is re-chosen per fold because class weights and resamplers shift the scores;
  what is compared is how cheap a model can be made, not a fixed cut.

The search space covers the kind-specific hyperparameters and the imbalance strategy
(and optionally the kind and mutual-information selection). Boosters get up to
MAX_ESTIMATORS trees and stop early on the fold's validation rows; the chosen trial's
n_estimators is the mean stopping point over its folds.

Optuna's pruners rely on trial.report, which multi-objective studies do not support, so
pruning is manual: after each fold the trial's running mean AUC is compared with the
median running AUC of the completed trials at the same fold, and the trial is pruned
below it (from the second fold on, once enough trials have completed to make a median
meaningful).

The study lives in SQLite (load_if_exists) so a second call with the same path and name
resumes it and adds up to n_trials more trials.

The budget converges rather than being a fixed count: the search stops once `patience`
finished trials in a row (completed or pruned) have not raised the best cross-validated AUC
by more than `min_improvement`; n_trials and the timeout are only ceilings. Optuna's own
Terminator is single-objective (and deprecated since 4.9), so the rule is a small callback
(Converged). A resumed study that has already converged runs no further trials.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from training.estimators import BOOSTERS, IMBALANCE, Monotone, build_estimator, fit_with_eval_set
from training.evaluate import DEFAULT_COSTS, min_cost_threshold, safe_auc

log = logging.getLogger(__name__)

MAX_ESTIMATORS = 1000
MIN_TRIALS_FOR_PRUNING = 5
# No pruning after the first fold: one fold's AUC is too noisy to judge a trial by.
WARMUP_FOLDS = 1
CHOICE_TOLERANCE = 0.02
Fold = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class TrialSummary:
    """One trial as the training step needs it: enough to rebuild the estimator."""

    number: int
    kind: str
    imbalance: str
    select_k: int | None
    params: dict[str, Any]
    auc: float
    cost: float


@dataclass(frozen=True)
class TuningResult:
    study_name: str
    storage: str | None
    pareto: list[TrialSummary]
    chosen: TrialSummary
    counts: dict[str, int] = field(default_factory=dict)
    converged: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "study_name": self.study_name,
            "storage": self.storage,
            "chosen": vars(self.chosen),
            "pareto": [vars(t) for t in self.pareto],
            "counts": self.counts,
            "converged": self.converged,
        }


@dataclass(frozen=True)
class Converged:
    """Stops a study once `patience` finished trials in a row have not raised the best AUC
    (objective 0) by more than `min_improvement`. Stateless: it reads the study, so it
    judges a resumed study by all of its trials."""

    patience: int = 20
    min_improvement: float = 0.0005

    def reached(self, study: optuna.Study) -> bool:
        """True when the last `patience` finished trials brought no real AUC gain."""
        if self.patience <= 0:
            return False
        finished = study.get_trials(
            deepcopy=False,
            states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED),
        )
        best, since = float("-inf"), 0
        for trial in sorted(finished, key=lambda t: t.number):
            auc = trial.values[0] if trial.values else float("-inf")
            if auc > best + self.min_improvement:
                best, since = auc, 0
            else:
                since += 1
        return best > float("-inf") and since >= self.patience

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.reached(study):
            log.info(
                "study %s converged: no AUC gain above %.4f in %d trials",
                study.study_name,
                self.min_improvement,
                self.patience,
            )
            study.stop()


@dataclass(frozen=True)
class SearchSpace:
    """What the search may vary besides the kind-specific hyperparameters."""

    kinds: Sequence[str] = ("xgboost",)
    imbalances: Sequence[str] = IMBALANCE
    select_ks: Sequence[int | None] = (None,)


def tune(
    x: pd.DataFrame,
    y: Any,
    folds: Sequence[Fold],
    *,
    space: SearchSpace | None = None,
    costs: Mapping[str, float] = DEFAULT_COSTS,
    amounts: Any = None,
    monotone: Monotone | None = None,
    storage_path: str | Path | None = None,
    study_name: str = "collection-risk",
    n_trials: int = 30,
    timeout: float | None = None,
    seed: int = 0,
    convergence: Converged | None = None,
) -> TuningResult:
    """Run (or resume) the study until it converges (see Converged) or n_trials / timeout
    run out; return its Pareto front and the chosen trial."""
    space = space or SearchSpace()
    convergence = convergence or Converged(patience=0)
    storage = f"sqlite:///{Path(storage_path)}" if storage_path is not None else None
    # Optuna logs every trial at INFO with all its parameters; our own log line is shorter.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _study(storage, study_name, seed)
    objective = _Objective(
        x, np.asarray(y), list(folds), space, dict(costs), amounts, monotone, seed
    )
    if convergence.reached(study):
        log.info("study %s has converged already: no further trials", study_name)
    else:
        study.optimize(
            objective,
            n_trials=n_trials,
            timeout=timeout,
            catch=(ValueError,),
            callbacks=[convergence],
        )
    return summarise(study, storage, converged=convergence.reached(study))


def _study(storage: str | None, study_name: str, seed: int) -> optuna.Study:
    existing = 0
    if storage is not None:
        try:
            existing = len(optuna.load_study(study_name=study_name, storage=storage).trials)
        except KeyError:
            existing = 0
    # Offset the seed by the trials already run so a resumed study does not replay the
    # random start-up suggestions of the first run.
    sampler = optuna.samplers.TPESampler(seed=seed + existing)
    return optuna.create_study(
        storage=storage,
        sampler=sampler,
        study_name=study_name,
        directions=["maximize", "minimize"],
        load_if_exists=True,
    )


class _Objective:
    """Cross-validates one suggested configuration; prunes between folds."""

    def __init__(
        self,
        x: pd.DataFrame,
        y: np.ndarray,
        folds: list[Fold],
        space: SearchSpace,
        costs: dict[str, float],
        amounts: Any,
        monotone: Monotone | None,
        seed: int,
    ) -> None:
        self.x, self.y, self.folds, self.space = x, y, folds, space
        self.costs, self.monotone, self.seed = costs, monotone, seed
        self.amounts = None if amounts is None else np.asarray(amounts, dtype=float)

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        kind = str(trial.suggest_categorical("kind", list(self.space.kinds)))
        imbalance = str(trial.suggest_categorical("imbalance", list(self.space.imbalances)))
        chosen_k = trial.suggest_categorical("select_k", list(self.space.select_ks))
        select_k = None if chosen_k is None else int(chosen_k)
        params = suggest_params(trial, kind)
        aucs: list[float] = []
        costs: list[float] = []
        stops: list[int] = []
        for index, (train_idx, valid_idx) in enumerate(self.folds):
            auc, cost, stop = self._fold(kind, imbalance, select_k, params, train_idx, valid_idx)
            aucs.append(auc)
            costs.append(cost)
            if stop is not None:
                stops.append(stop)
            running = [float(np.mean(aucs[: i + 1])) for i in range(len(aucs))]
            trial.set_user_attr("running_auc", running)
            if should_prune(trial.study, index, running[-1]):
                log.info(
                    "trial %d pruned after fold %d (AUC %.4f)", trial.number, index, running[-1]
                )
                raise optuna.TrialPruned()
        if stops:
            trial.set_user_attr("n_estimators", int(np.ceil(np.mean(stops))))
        result = float(np.mean(aucs)), float(np.mean(costs))
        log.info("trial %d %s/%s AUC %.4f cost %.4f", trial.number, kind, imbalance, *result)
        return result

    def _fold(
        self,
        kind: str,
        imbalance: str,
        select_k: int | None,
        params: dict[str, Any],
        train_idx: np.ndarray,
        valid_idx: np.ndarray,
    ) -> tuple[float, float, int | None]:
        k = None if select_k is None else min(int(select_k), self.x.shape[1])
        model = build_estimator(kind, params, imbalance, self.monotone, k, self.seed)
        x_train, x_valid = self.x.iloc[train_idx], self.x.iloc[valid_idx]
        y_train, y_valid = self.y[train_idx], self.y[valid_idx]
        fit_with_eval_set(model, x_train, y_train, x_valid, y_valid)
        p = model.predict_proba(x_valid)[:, 1]
        amounts = None if self.amounts is None else self.amounts[valid_idx]
        _, cost = min_cost_threshold(y_valid, p, self.costs, amounts)
        auc = safe_auc(y_valid, p)
        if auc is None:
            raise ValueError("a validation fold holds only one class")
        stop = getattr(model.steps[-1][1], "best_iteration_", None)
        return auc, cost, stop


def should_prune(
    study: optuna.Study,
    fold_index: int,
    running_auc: float,
    min_trials: int = MIN_TRIALS_FOR_PRUNING,
) -> bool:
    """True when `running_auc` after fold `fold_index` is below the completed trials' median."""
    if fold_index < WARMUP_FOLDS:
        return False
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    history = [
        t.user_attrs["running_auc"][fold_index]
        for t in completed
        if len(t.user_attrs.get("running_auc", [])) > fold_index
    ]
    if len(history) < min_trials:
        return False
    return running_auc < float(np.median(history))


# --- search space ---------------------------------------------------------------------


def _xgboost_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "n_estimators": MAX_ESTIMATORS,
        "learning_rate": trial.suggest_float("xgboost_learning_rate", 0.01, 0.2, log=True),
        "max_depth": trial.suggest_int("xgboost_max_depth", 2, 8),
        "min_child_weight": trial.suggest_float("xgboost_min_child_weight", 1.0, 100.0, log=True),
        "subsample": trial.suggest_float("xgboost_subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("xgboost_colsample_bytree", 0.3, 1.0),
        "reg_lambda": trial.suggest_float("xgboost_reg_lambda", 1e-3, 30.0, log=True),
        "gamma": trial.suggest_float("xgboost_gamma", 0.0, 5.0),
    }


def _lightgbm_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "n_estimators": MAX_ESTIMATORS,
        "learning_rate": trial.suggest_float("lightgbm_learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("lightgbm_num_leaves", 4, 64, log=True),
        "min_child_samples": trial.suggest_int("lightgbm_min_child_samples", 5, 300, log=True),
        "subsample": trial.suggest_float("lightgbm_subsample", 0.5, 1.0),
        "subsample_freq": 1,
        "colsample_bytree": trial.suggest_float("lightgbm_colsample_bytree", 0.3, 1.0),
        "reg_lambda": trial.suggest_float("lightgbm_reg_lambda", 1e-3, 30.0, log=True),
    }


def _logistic_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "C": trial.suggest_float("logistic_C", 1e-3, 10.0, log=True),
        "encoding": trial.suggest_categorical("logistic_encoding", ["bins", "scale"]),
        "n_bins": trial.suggest_int("logistic_n_bins", 5, 20),
    }


def _stacking_space(trial: optuna.Trial) -> dict[str, Any]:
    # The stack's base learners keep their defaults; tuning them inside the stack costs
    # cv x 3 fits per fold for little gain over tuning them alone.
    return {"meta_C": trial.suggest_float("stacking_meta_C", 1e-2, 10.0, log=True)}


SPACES: Mapping[str, Callable[[optuna.Trial], dict[str, Any]]] = {
    "xgboost": _xgboost_space,
    "lightgbm": _lightgbm_space,
    "logistic": _logistic_space,
    "stacking": _stacking_space,
}


def suggest_params(trial: optuna.Trial, kind: str) -> dict[str, Any]:
    """Estimator params for `kind` (Optuna names carry a kind prefix to stay distinct)."""
    return SPACES[kind](trial)


# --- results --------------------------------------------------------------------------


def params_of(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The estimator params of a finished trial, as build_estimator takes them."""
    kind = trial.params["kind"]
    prefix = f"{kind}_"
    params = {k[len(prefix) :]: v for k, v in trial.params.items() if k.startswith(prefix)}
    if kind in BOOSTERS:
        params["n_estimators"] = int(trial.user_attrs.get("n_estimators", MAX_ESTIMATORS))
        if kind == "lightgbm":
            params["subsample_freq"] = 1
    return params


def _summary(trial: optuna.trial.FrozenTrial) -> TrialSummary:
    values = trial.values or [float("nan"), float("nan")]
    select_k = trial.params.get("select_k")
    return TrialSummary(
        number=trial.number,
        kind=str(trial.params["kind"]),
        imbalance=str(trial.params["imbalance"]),
        select_k=None if select_k is None else int(select_k),
        params=params_of(trial),
        auc=float(values[0]),
        cost=float(values[1]),
    )


def choose(pareto: Sequence[TrialSummary], tolerance: float = CHOICE_TOLERANCE) -> TrialSummary:
    """Highest AUC among front trials whose cost is within `tolerance` (2%) of the cheapest.

    Ranking is what the collection queue uses every day; the cost constraint keeps the pick
    from giving up more than a sliver of the business objective for it.
    """
    cheapest = min(t.cost for t in pareto)
    eligible = [t for t in pareto if t.cost <= cheapest + tolerance * abs(cheapest)]
    return max(eligible, key=lambda t: (t.auc, -t.cost))


def summarise(
    study: optuna.Study, storage: str | None = None, *, converged: bool = False
) -> TuningResult:
    """Pareto front and chosen trial of a study (which must hold a completed trial)."""
    front = sorted((_summary(t) for t in study.best_trials), key=lambda t: -t.auc)
    if not front:
        raise RuntimeError(f"study {study.study_name!r} has no completed trial")
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    counts = {state: states.count(state) for state in sorted(set(states))}
    chosen = choose(front)
    log.info(
        "study %s: %s%s; chosen trial %d (%s/%s) AUC %.4f cost %.4f",
        study.study_name,
        counts,
        ", converged" if converged else "",
        chosen.number,
        chosen.kind,
        chosen.imbalance,
        chosen.auc,
        chosen.cost,
    )
    return TuningResult(study.study_name, storage, front, chosen, counts, converged)
