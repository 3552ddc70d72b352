"""The scoring model: everything the scorer needs to turn a feature vector into a decision.

One `ScoringModel` is pickled (cloudpickle) as an artifact of the registered MLflow model.
The scorer loads that object directly (`load_bundle`), because going through the pyfunc
layer adds schema enforcement and a DataFrame copy to every request; `mlflow.pyfunc.load_model`
works too (through `ScoringPyfunc`) for `mlflow models serve`, batch jobs and the MLflow UI.
Loading either needs this project installed: the pickle refers to `training.scoring_model`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal, Protocol

import cloudpickle
import numpy as np
import pandas as pd
from mlflow.models.signature import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import ColSpec, Schema

from collectwise.errors import InvalidInputError
from training.feature_domain import check_domain

log = logging.getLogger(__name__)

Band = Literal["low", "medium", "high"]
BUNDLE_FILENAME = "scoring_model.pkl"
# Key of the pickled ScoringModel in the pyfunc model's artifacts (<model>/artifacts/<file>).
BUNDLE_ARTIFACT_KEY = "scoring_model"
OUTPUT_COLUMNS = ("probability", "band", "decision")
# What a pickled bundle may need at load time; pinned in the pyfunc model's requirements.
_RUNTIME_DISTRIBUTIONS = (
    "mlflow",
    "cloudpickle",
    "numpy",
    "pandas",
    "scikit-learn",
    "imbalanced-learn",
    "xgboost",
    "lightgbm",
)


class MissingFeaturesError(InvalidInputError, ValueError):
    """The input lacks columns the model was trained on."""


class ModelFileMissingError(InvalidInputError, FileNotFoundError):
    """No pickled model where one was expected; the message says what to run."""


class Calibrator(Protocol):
    """Maps raw probabilities to calibrated ones, e.g. a fitted IsotonicRegression."""

    def predict(self, p: Any) -> Any: ...


class Estimator(Protocol):
    def predict_proba(self, x: Any) -> Any: ...


@dataclass
class ScoringModel:
    """A fitted estimator with its calibration, threshold, risk bands and feature contract.

    `feature_columns` is the model matrix in training order; `feature_service` and
    `definitions_fingerprint` let the scorer refuse to serve against changed feature
    definitions. Bands: p <= low_max is low, p <= medium_max is medium, above is high.
    The estimator may already be calibrated (e.g. CalibratedClassifierCV over the fitted
    pipeline): then pass calibrator=None and name the method in metadata["calibration"].
    metadata["data_fingerprint"] becomes the version's data_fingerprint tag unless the
    register() tags give one.
    """

    estimator: Estimator
    calibrator: Calibrator | None
    threshold: float
    low_max: float
    medium_max: float
    feature_columns: list[str]
    feature_service: str
    definitions_fingerprint: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.feature_columns = list(self.feature_columns)
        if not self.feature_columns:
            raise ValueError("a scoring model needs at least one feature column")
        if len(set(self.feature_columns)) != len(self.feature_columns):
            raise ValueError("feature columns must be unique")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {self.threshold}")
        if not 0.0 <= self.low_max <= self.medium_max <= 1.0:
            raise ValueError(
                f"band cutoffs need 0 <= low_max <= medium_max <= 1, "
                f"got {self.low_max}, {self.medium_max}"
            )

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model matrix: the stored columns in the stored order, as float64."""
        missing = [c for c in self.feature_columns if c not in frame.columns]
        if missing:
            raise MissingFeaturesError(
                f"input lacks {len(missing)} feature column(s) the model needs: "
                + ", ".join(missing)
            )
        if list(frame.columns) == self.feature_columns and all(
            dtype == np.float64 for dtype in frame.dtypes
        ):
            # Already the model matrix (model_matrix builds it in this order): no copies.
            return frame
        return frame.loc[:, self.feature_columns].astype("float64")

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of default_30d = 1, one per row."""
        x = self.matrix(frame)
        fast = self._fast_path()
        if fast is not None:
            p = fast(x.to_numpy())
        else:
            p = np.asarray(self.estimator.predict_proba(x))[:, 1]
        if self.calibrator is not None:
            p = np.asarray(self.calibrator.predict(p), dtype="float64")
        return np.clip(p, 0.0, 1.0)

    def _fast_path(self) -> Any:
        # Built on first use and verified against the estimator (training.fast_predict); not
        # pickled, so a bundle saved by an older version loads and compiles its own.
        if "_fast" not in self.__dict__:
            from training.fast_predict import compile_fast  # noqa: PLC0415

            self.__dict__["_fast"] = compile_fast(self.estimator, len(self.feature_columns))
        return self.__dict__["_fast"]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_fast", None)
        return state

    def predict_proba_rows(self, rows: Sequence[Sequence[float]]) -> np.ndarray:
        """Rows already in feature_columns order (e.g. a logged vector being replayed)."""
        frame = pd.DataFrame(np.asarray(rows, dtype="float64"), columns=self.feature_columns)
        return self.predict_proba(frame)

    def band(self, p: float) -> Band:
        if p <= self.low_max:
            return "low"
        if p <= self.medium_max:
            return "medium"
        return "high"

    def bands(self, p: np.ndarray) -> np.ndarray:
        return np.where(p <= self.low_max, "low", np.where(p <= self.medium_max, "medium", "high"))

    def decide(self, p: float) -> bool:
        """True: treat the account as likely not to pay (at or above the threshold)."""
        return bool(p >= self.threshold)

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """probability, band and decision per row, on the input's index."""
        p = self.predict_proba(frame)
        return pd.DataFrame(
            {"probability": p, "band": self.bands(p), "decision": p >= self.threshold},
            index=frame.index,
        )


def save_bundle(model: ScoringModel, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        cloudpickle.dump(model, fh)
    return path


def load_bundle(path: Path) -> ScoringModel:
    """Load a pickled ScoringModel. Only load files from your own registry: pickle runs code."""
    if not path.is_file():
        raise ModelFileMissingError(f"no model at {path}: run `collectwise train fit`")
    with path.open("rb") as fh:
        model = cloudpickle.load(fh)
    if not isinstance(model, ScoringModel):
        raise TypeError(f"{path} holds a {type(model).__name__}, not a ScoringModel")
    return model


class ScoringPyfunc(PythonModel):
    """The pyfunc face of a ScoringModel; holds no state until load_context."""

    def __init__(self) -> None:
        self._model: ScoringModel | None = None

    def load_context(self, context: Any) -> None:
        self._model = load_bundle(Path(context.artifacts[BUNDLE_ARTIFACT_KEY]))

    @property
    def scoring_model(self) -> ScoringModel:
        if self._model is None:
            raise RuntimeError("the pyfunc model was not loaded through mlflow.pyfunc")
        return self._model

    # A DataFrame hint: MLflow then infers nothing from hints and uses the logged signature.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        # Matrices from outside the platform: refuse what no account can have (a negative
        # day count would still get a score from the trees, silently).
        check_domain(frame)
        return self.scoring_model.score(frame)


def pyfunc_signature(model: ScoringModel) -> ModelSignature:
    """Inputs: the feature columns as doubles; outputs: probability, band, decision."""
    inputs = Schema([ColSpec("double", c) for c in model.feature_columns])
    outputs = Schema(
        [
            ColSpec("double", "probability"),
            ColSpec("string", "band"),
            ColSpec("boolean", "decision"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def pip_requirements() -> list[str]:
    """Pinned requirements of what a bundle may pickle; explicit so MLflow skips inference."""
    reqs = []
    for dist in _RUNTIME_DISTRIBUTIONS:
        try:
            reqs.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return reqs


def pyfunc_model_kwargs(model: ScoringModel, bundle: Path) -> dict[str, Any]:
    """What mlflow.pyfunc.save_model / log_model need for a bundle pickled at `bundle`."""
    return {
        "python_model": ScoringPyfunc(),
        "artifacts": {BUNDLE_ARTIFACT_KEY: str(bundle)},
        "signature": pyfunc_signature(model),
        "pip_requirements": pip_requirements(),
    }


@contextmanager
def quiet_pyfunc_warnings() -> Iterator[None]:
    """Silence MLflow's advice to add an input example: the signature is given explicitly and
    a made-up example row would only mislead."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*input example was not provided.*")
        yield
