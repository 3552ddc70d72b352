"""Estimators: one factory for every model kind and class-imbalance strategy.

`build_estimator` returns an imblearn Pipeline that takes the float64 model matrix (NaNs
allowed) and exposes fit / predict_proba. Resamplers sit inside the pipeline after the
imputer, so they only ever see the rows passed to fit (training folds); predict_proba skips
them, so validation and test rows are never resampled.

Monotone constraints are given either positionally (one int per input column, as
`training.model_matrix.monotone_constraints(columns)` returns) or by column name. Mutual-information
selection drops columns, so with `select_k` pass them by name.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Mapping, Sequence
from functools import partial
from types import MappingProxyType
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import xgboost
from imblearn.base import BaseSampler
from imblearn.combine import SMOTEENN
from imblearn.over_sampling import SMOTE, BorderlineSMOTE
from imblearn.pipeline import Pipeline
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import StackingClassifier
from sklearn.feature_selection import SelectKBest, mutual_info_classif
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import KBinsDiscretizer, StandardScaler

log = logging.getLogger(__name__)

KINDS = ("logistic", "xgboost", "lightgbm", "stacking")
IMBALANCE = ("none", "class_weight", "smote", "borderline_smote", "smoteenn")
SAMPLERS = ("smote", "borderline_smote", "smoteenn")
BOOSTERS = ("xgboost", "lightgbm")
EARLY_STOPPING_ROUNDS = 50
# Patience in "learning-rate-weighted" rounds: at a learning rate of 0.01 fifty rounds move
# the model so little that validation AUC plateaus by chance and stops training far too soon.
EARLY_STOPPING_STEP = 2.0


def early_stopping_rounds(learning_rate: float | None) -> int:
    """Rounds without validation-AUC gain before stopping: 50, more for slow learners."""
    if not learning_rate:
        return EARLY_STOPPING_ROUNDS
    return max(EARLY_STOPPING_ROUNDS, round(EARLY_STOPPING_STEP / learning_rate))


Monotone = Sequence[int] | Mapping[str, int]

# Defaults per kind; tuning and params.yaml override them key by key. Tree defaults come from
# 5-fold runs on the UCI and synthetic data (shallow trees, slow learning, row/column
# subsampling); the logistic scorecard bins each feature into deciles.
DEFAULT_PARAMS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "logistic": {"C": 0.1, "l1_ratio": 0.0, "encoding": "bins", "n_bins": 10, "max_iter": 2000},
        "xgboost": {
            "n_estimators": 400,
            "learning_rate": 0.03,
            "max_depth": 4,
            "min_child_weight": 5.0,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "reg_lambda": 1.0,
            "gamma": 0.0,
        },
        "lightgbm": {
            "n_estimators": 400,
            "learning_rate": 0.03,
            "num_leaves": 15,
            "min_child_samples": 40,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.8,
            "reg_lambda": 1.0,
        },
        # `members` (a list of {kind, imbalance, select_k, params}) replaces the fixed trio;
        # training builds it from the comparison's best rows.
        "stacking": {
            "cv": 5,
            "meta_C": 1.0,
            "members": [],
            "xgboost": {},
            "lightgbm": {},
            "logistic": {},
        },
    }
)


def default_params(kind: str) -> dict[str, Any]:
    """A fresh, mutable copy of the defaults of one kind."""
    _check_choice("kind", kind, KINDS)
    return copy.deepcopy(dict(DEFAULT_PARAMS[kind]))


def resolve_params(kind: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults overridden by `params`; for stacking the per-component dicts merge too."""
    merged = default_params(kind)
    for key, value in (params or {}).items():
        if kind == "stacking" and key in ("xgboost", "lightgbm", "logistic"):
            merged[key] = {**merged[key], **dict(value)}
        else:
            merged[key] = value
    return merged


def build_estimator(
    kind: str,
    params: Mapping[str, Any] | None = None,
    imbalance: str = "class_weight",
    monotone: Monotone | None = None,
    select_k: int | None = None,
    seed: int = 0,
) -> Pipeline:
    """A pipeline for `kind` with defaults overridden by `params` (see DEFAULT_PARAMS)."""
    _check_choice("kind", kind, KINDS)
    _check_choice("imbalance", imbalance, IMBALANCE)
    if select_k is not None and monotone is not None and not isinstance(monotone, Mapping):
        raise ValueError("with select_k pass monotone by column name: selection drops columns")
    merged = resolve_params(kind, params)
    if kind == "logistic":
        steps = _logistic_steps(merged, imbalance, select_k, seed)
    elif kind == "stacking":
        steps = _stacking_steps(merged, imbalance, monotone, select_k, seed)
    else:
        steps = _booster_steps(kind, merged, imbalance, monotone, select_k, seed)
    pipeline = Pipeline(steps)
    # Column names survive every step, so name-based constraints and SHAP names line up.
    pipeline.set_output(transform="pandas")
    if kind == "stacking":
        # The stack's meta-learner is fitted on plain arrays; feed it arrays when scoring too.
        pipeline.steps[-1][1].set_output(transform="default")
    return pipeline


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")


def _sampler(imbalance: str, seed: int) -> BaseSampler:
    if imbalance == "smote":
        return SMOTE(random_state=seed)
    if imbalance == "borderline_smote":
        return BorderlineSMOTE(random_state=seed)
    return SMOTEENN(random_state=seed)


def _selector(select_k: int, seed: int) -> SelectKBest:
    return SelectKBest(partial(mutual_info_classif, random_state=seed), k=select_k)


def _front_steps(
    imbalance: str, select_k: int | None, seed: int, imputer: SimpleImputer | None
) -> list[tuple[str, Any]]:
    """Impute, select and resample, in that order; samplers and MI need NaN-free input."""
    steps: list[tuple[str, Any]] = []
    if imputer is None and (imbalance in SAMPLERS or select_k is not None):
        # Trees handle NaN natively; impute only when a later step cannot.
        imputer = SimpleImputer(strategy="median", keep_empty_features=True)
    if imputer is not None:
        steps.append(("impute", imputer))
    if select_k is not None:
        steps.append(("select", _selector(select_k, seed)))
    if imbalance in SAMPLERS:
        steps.append(("resample", _sampler(imbalance, seed)))
    return steps


def _booster_steps(
    kind: str,
    params: dict[str, Any],
    imbalance: str,
    monotone: Monotone | None,
    select_k: int | None,
    seed: int,
) -> list[tuple[str, Any]]:
    model = BoostedTrees(
        kind=kind,
        params=params,
        monotone=monotone,
        balance=imbalance == "class_weight",
        seed=seed,
    )
    return [*_front_steps(imbalance, select_k, seed, None), ("model", model)]


def _logistic_steps(
    params: dict[str, Any], imbalance: str, select_k: int | None, seed: int
) -> list[tuple[str, Any]]:
    # Median imputation plus a missing flag per column: the scorecard sees missingness.
    imputer = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
    steps = _front_steps(imbalance, select_k, seed, imputer)
    steps.append(("encode", _encoder(params)))
    steps.append(("model", _logistic(params, imbalance, seed)))
    return steps


def _encoder(params: Mapping[str, Any]) -> Any:
    if params.get("encoding", "bins") == "scale":
        return StandardScaler()
    # Decile bins, one-hot, are the classic scorecard: a step function per feature.
    # Missing flags are already 0/1 and pass through unbinned.
    bins = QuietBins(n_bins=int(params.get("n_bins", 10)), encode="onehot-dense")
    return ColumnTransformer(
        [
            ("flags", "passthrough", make_column_selector(pattern="^missingindicator_")),
            ("bins", bins, make_column_selector(pattern="^(?!missingindicator_)")),
        ],
        verbose_feature_names_out=False,
    )


def _logistic(params: Mapping[str, Any], imbalance: str, seed: int) -> LogisticRegression:
    return LogisticRegression(
        C=float(params.get("C", 1.0)),
        l1_ratio=float(params.get("l1_ratio", 0.0)),
        solver="saga" if float(params.get("l1_ratio", 0.0)) > 0 else "lbfgs",
        max_iter=int(params.get("max_iter", 2000)),
        class_weight="balanced" if imbalance == "class_weight" else None,
        random_state=seed,
    )


def _stacking_steps(
    params: dict[str, Any],
    imbalance: str,
    monotone: Monotone | None,
    select_k: int | None,
    seed: int,
) -> list[tuple[str, Any]]:
    # Resampling happens once, before the stack, so the base learners see plain weights.
    base_imbalance = "class_weight" if imbalance == "class_weight" else "none"
    members = params.get("members")
    if members:
        estimators = [
            (f"{i}_{m['kind']}", _member(m, monotone, seed)) for i, m in enumerate(members)
        ]
    else:
        estimators = _default_members(params, base_imbalance, monotone, seed)
    stack = StackingClassifier(
        estimators=estimators,
        final_estimator=LogisticRegression(
            C=float(params.get("meta_C", 1.0)),
            class_weight="balanced" if base_imbalance == "class_weight" else None,
        ),
        cv=StratifiedKFold(int(params.get("cv", 5)), shuffle=True, random_state=seed),
        stack_method="predict_proba",
    )
    return [*_front_steps(imbalance, select_k, seed, None), ("model", stack)]


def _default_members(
    params: dict[str, Any], imbalance: str, monotone: Monotone | None, seed: int
) -> list[tuple[str, Pipeline]]:
    """The fixed trio, used when no members are named (e.g. a stack listed in params.yaml)."""
    return [
        ("xgboost", build_estimator("xgboost", params["xgboost"], imbalance, monotone, None, seed)),
        (
            "lightgbm",
            build_estimator("lightgbm", params["lightgbm"], imbalance, monotone, None, seed),
        ),
        ("logistic", build_estimator("logistic", params["logistic"], imbalance, None, None, seed)),
    ]


def _member(spec: Mapping[str, Any], monotone: Monotone | None, seed: int) -> Pipeline:
    """One named base learner (kind, imbalance, select_k, params), e.g. a comparison row."""
    kind = str(spec["kind"])
    if kind == "stacking":
        raise ValueError("a stack's members cannot be stacks")
    return build_estimator(
        kind,
        spec.get("params"),
        str(spec.get("imbalance", "class_weight")),
        None if kind == "logistic" else monotone,
        spec.get("select_k"),
        seed,
    )


class QuietBins(KBinsDiscretizer):
    """Quantile bins that merge empty bins of low-cardinality columns without a warning.

    Counts and flags have few distinct values, so some decile edges coincide; that is
    expected here and KBinsDiscretizer's per-column warning would only add noise.
    """

    def fit(self, x: Any, y: Any = None, sample_weight: Any = None) -> QuietBins:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Bins whose width are too small")
            warnings.filterwarnings("ignore", message="Feature .* is constant")
            super().fit(x, y, sample_weight=sample_weight)
        return self


class BoostedTrees(ClassifierMixin, BaseEstimator):
    """XGBoost or LightGBM with what needs the training rows resolved at fit time.

    Resolved at fit: monotone constraints by column name (selection may have dropped some),
    XGBoost's scale_pos_weight from the class balance, and early stopping on an eval set.
    """

    def __init__(
        self,
        kind: str = "xgboost",
        params: Mapping[str, Any] | None = None,
        monotone: Monotone | None = None,
        balance: bool = False,
        seed: int = 0,
    ) -> None:
        self.kind = kind
        self.params = params
        self.monotone = monotone
        self.balance = balance
        self.seed = seed

    def fit(
        self,
        x: pd.DataFrame,
        y: Any,
        eval_set: tuple[pd.DataFrame, Any] | None = None,
    ) -> BoostedTrees:
        """Fit; with `eval_set` stop once validation AUC stops improving (see
        early_stopping_rounds)."""
        y_arr = np.asarray(y)
        constraints = self._constraints(x)
        if self.kind == "xgboost":
            self.estimator_ = self._fit_xgboost(x, y_arr, constraints, eval_set)
        else:
            self.estimator_ = self._fit_lightgbm(x, y_arr, constraints, eval_set)
        self.classes_ = self.estimator_.classes_
        self.n_features_in_ = x.shape[1]
        if isinstance(x, pd.DataFrame):
            self.feature_names_in_ = np.asarray(x.columns, dtype=object)
        self.best_iteration_ = self._best_iteration(eval_set is not None)
        return self

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        proba: np.ndarray = self.estimator_.predict_proba(x)
        return proba

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.classes_)[self.predict_proba(x).argmax(axis=1)]

    @property
    def feature_importances_(self) -> np.ndarray:
        return np.asarray(self.estimator_.feature_importances_)

    def _constraints(self, x: pd.DataFrame) -> tuple[int, ...] | None:
        if self.monotone is None:
            return None
        if isinstance(self.monotone, Mapping):
            return tuple(int(self.monotone.get(str(c), 0)) for c in x.columns)
        if len(self.monotone) != x.shape[1]:
            raise ValueError(f"{len(self.monotone)} monotone constraints for {x.shape[1]} columns")
        return tuple(int(c) for c in self.monotone)

    def _fit_xgboost(
        self,
        x: pd.DataFrame,
        y: np.ndarray,
        constraints: tuple[int, ...] | None,
        eval_set: tuple[pd.DataFrame, Any] | None,
    ) -> xgboost.XGBClassifier:
        params: dict[str, Any] = {"tree_method": "hist", "eval_metric": "auc"}
        params.update(self.params or {})
        if self.balance:
            positives = max(int(y.sum()), 1)
            params["scale_pos_weight"] = (len(y) - positives) / positives
        if constraints is not None:
            params["monotone_constraints"] = constraints
        if eval_set is not None:
            params["early_stopping_rounds"] = early_stopping_rounds(params.get("learning_rate"))
        model = xgboost.XGBClassifier(random_state=self.seed, **params)
        evals = [(eval_set[0], np.asarray(eval_set[1]))] if eval_set is not None else None
        model.fit(x, y, eval_set=evals, verbose=False)
        return model

    def _fit_lightgbm(
        self,
        x: pd.DataFrame,
        y: np.ndarray,
        constraints: tuple[int, ...] | None,
        eval_set: tuple[pd.DataFrame, Any] | None,
    ) -> lightgbm.LGBMClassifier:
        params: dict[str, Any] = {"verbose": -1, **(self.params or {})}
        if self.balance:
            params["class_weight"] = "balanced"
        if constraints is not None:
            params["monotone_constraints"] = list(constraints)
        model = lightgbm.LGBMClassifier(random_state=self.seed, **params)
        rate = params.get("learning_rate")
        if eval_set is None:
            model.fit(x, y)
            return model
        model.fit(
            x,
            y,
            eval_X=(eval_set[0],),
            eval_y=(np.asarray(eval_set[1]),),
            eval_metric="auc",
            callbacks=[lightgbm.early_stopping(early_stopping_rounds(rate), verbose=False)],
        )
        return model

    def _best_iteration(self, stopped_early: bool) -> int | None:
        if not stopped_early:
            return None
        if self.kind == "xgboost":
            return int(self.estimator_.best_iteration) + 1
        return int(self.estimator_.best_iteration_)


def fit_with_eval_set(
    pipeline: Pipeline, x: pd.DataFrame, y: Any, x_valid: pd.DataFrame, y_valid: Any
) -> Pipeline:
    """Fit `pipeline` on (x, y); a booster at its end early-stops on the validation rows.

    The validation rows pass through the fitted transformers but never through a sampler,
    exactly as they would in predict_proba. Other final steps just fit.
    """
    final = pipeline.steps[-1][1]
    if not isinstance(final, BoostedTrees):
        return pipeline.fit(x, y)
    x_train, y_train, x_eval = x, y, x_valid
    for _, step in pipeline.steps[:-1]:
        if hasattr(step, "fit_resample"):
            x_train, y_train = step.fit_resample(x_train, y_train)
        else:
            x_train = step.fit_transform(x_train, y_train)
            x_eval = step.transform(x_eval)
    final.fit(x_train, y_train, eval_set=(x_eval, y_valid))
    return pipeline
