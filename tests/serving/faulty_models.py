"""Champions that go wrong after promotion, for the probation tests: each wraps a real fitted
estimator and fails in one way. Pickled by value (cloudpickle.register_pickle_by_value), so
a scorer process loads them without the tests package on its path."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class RaisesForSomeRows:
    """Raises for any row whose `column` is above `cut` (a model bug on part of the book)."""

    inner: Any
    column: str
    cut: float

    def predict_proba(self, x: Any) -> np.ndarray:
        if (np.asarray(x[self.column], dtype="float64") > self.cut).any():
            raise FloatingPointError(f"{self.column} above {self.cut}: the model cannot score")
        return np.asarray(self.inner.predict_proba(x))


@dataclass
class Slow:
    """Right answers, `seconds` late on every call."""

    inner: Any
    seconds: float

    def predict_proba(self, x: Any) -> np.ndarray:
        time.sleep(self.seconds)
        return np.asarray(self.inner.predict_proba(x))


@dataclass
class Shifted:
    """Scores turned upside down: every request succeeds, the distribution has moved."""

    inner: Any

    def predict_proba(self, x: Any) -> np.ndarray:
        return np.asarray(self.inner.predict_proba(x))[:, ::-1]
