"""ScoringModel: the column contract, bands and decisions, and both ways of loading it."""

from __future__ import annotations

import pickle
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from training.scoring_model import (
    MissingFeaturesError,
    ScoringModel,
    ScoringPyfunc,
    load_bundle,
    pyfunc_model_kwargs,
    save_bundle,
)

pytestmark = pytest.mark.unit

COLUMNS = ["days_overdue", "debt_amount", "payment_velocity"]


@pytest.fixture(scope="module")
def frame() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.normal(size=(300, 3)), columns=COLUMNS)
    y = pd.Series(
        (x["days_overdue"] - x["payment_velocity"] + rng.normal(size=300) > 0).astype(int)
    )
    return x, y


@pytest.fixture(scope="module")
def model(frame: tuple[pd.DataFrame, pd.Series]) -> ScoringModel:
    x, y = frame
    estimator = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    raw = estimator.predict_proba(x)[:, 1]
    calibrator = IsotonicRegression(out_of_bounds="clip").fit(raw, y)
    return ScoringModel(
        estimator=estimator,
        calibrator=calibrator,
        threshold=0.5,
        low_max=0.2,
        medium_max=0.6,
        feature_columns=COLUMNS,
        feature_service="collection_risk_v1",
        definitions_fingerprint="fp-test",
        metadata={"data_fingerprint": "data-test"},
    )


def test_calibrated_probabilities_use_the_calibrator(model, frame):
    x, _ = frame
    raw = np.asarray(model.estimator.predict_proba(model.matrix(x)))[:, 1]
    expected = np.clip(model.calibrator.predict(raw), 0, 1)
    np.testing.assert_array_equal(model.predict_proba(x), expected)
    assert model.predict_proba(x).shape == (len(x),)


def test_column_order_does_not_matter_and_extras_are_ignored(model, frame):
    x, _ = frame
    shuffled = x[COLUMNS[::-1]].assign(account_id=np.arange(len(x)))
    np.testing.assert_array_equal(model.predict_proba(shuffled), model.predict_proba(x))


def test_rows_in_stored_order_replay_the_same_scores(model, frame):
    x, _ = frame
    rows = x.head(5).to_numpy().tolist()
    np.testing.assert_array_equal(model.predict_proba_rows(rows), model.predict_proba(x.head(5)))


def test_missing_column_is_named(model, frame):
    x, _ = frame
    with pytest.raises(MissingFeaturesError, match="debt_amount") as err:
        model.predict_proba(x.drop(columns=["debt_amount"]))
    assert "days_overdue" not in str(err.value)


def test_pickle_round_trip_gives_identical_probabilities(model, frame, tmp_path: Path):
    x, _ = frame
    loaded = load_bundle(save_bundle(model, tmp_path / "model.pkl"))
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert loaded.feature_columns == COLUMNS
    assert loaded.definitions_fingerprint == "fp-test"
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_proba(x), model.predict_proba(x))


def test_load_bundle_refuses_other_objects(tmp_path: Path):
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(TypeError, match="not a ScoringModel"):
        load_bundle(path)


def test_pyfunc_round_trip_gives_identical_scores(model, frame, tmp_path: Path):
    x, _ = frame
    # What registration logs, saved to a folder instead of a run.
    bundle = save_bundle(model, tmp_path / "bundle.pkl")
    mlflow.pyfunc.save_model(path=str(tmp_path / "pyfunc"), **pyfunc_model_kwargs(model, bundle))
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    out = loaded.predict(x[COLUMNS[::-1]])
    assert list(out.columns) == ["probability", "band", "decision"]
    np.testing.assert_array_equal(out["probability"].to_numpy(), model.predict_proba(x))
    expected = model.score(x)
    assert out["band"].tolist() == expected["band"].tolist()
    assert out["decision"].tolist() == expected["decision"].tolist()
    inner = loaded.unwrap_python_model()
    assert isinstance(inner, ScoringPyfunc)
    np.testing.assert_array_equal(inner.scoring_model.predict_proba(x), model.predict_proba(x))


@pytest.mark.parametrize(
    ("p", "band"),
    [
        (0.0, "low"),
        (0.2, "low"),
        (float(np.nextafter(0.2, 1)), "medium"),
        (0.6, "medium"),
        (float(np.nextafter(0.6, 1)), "high"),
        (1.0, "high"),
    ],
)
def test_bands_at_the_cutoffs(model, p, band):
    assert model.band(p) == band
    assert model.bands(np.array([p])).tolist() == [band]


def test_decision_at_the_threshold(model):
    assert model.decide(0.5) is True
    assert model.decide(float(np.nextafter(0.5, 0))) is False
    scored = model.score(pd.DataFrame(np.zeros((1, 3)), columns=COLUMNS))
    assert scored["decision"].iloc[0] == model.decide(scored["probability"].iloc[0])


@pytest.mark.parametrize(
    ("threshold", "low_max", "medium_max", "columns"),
    [
        (1.5, 0.2, 0.6, COLUMNS),
        (0.5, 0.7, 0.6, COLUMNS),
        (0.5, 0.2, 0.6, []),
        (0.5, 0.2, 0.6, ["a", "a"]),
    ],
)
def test_invalid_models_are_refused(model, threshold, low_max, medium_max, columns):
    with pytest.raises(ValueError):
        ScoringModel(model.estimator, None, threshold, low_max, medium_max, columns, "svc", "fp")
