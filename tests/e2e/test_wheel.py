"""The platform installed as a wheel, run from a project home outside the checkout.

A wheel built from the repo goes into a new virtual environment (the pinned dependencies from
requirements.lock, then the wheel without dependencies) and runs init -> generate -> validate
-> build-features -> apply -> materialize -> build-dataset -> (a small model registered) ->
score-batch in a temporary directory that shares nothing with the checkout: every path comes
from the working directory, never from where the installed source files lie.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# What a wheel is not built from: environments, data, caches and outputs of other runs.
NOT_SOURCES = (".venv", ".git", "data", "data_*", "mlruns", "mlflow.db", "models", "reports",
               ".run", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis",
               "benchmarks", "tests")  # fmt: skip

REGISTER = """
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from collectwise.settings import get_settings
from feature_repo.feature_services import COLLECTION_RISK_V1
from ingestion.feast_store import open_store
from training.scoring_model import ScoringModel
from training.dataset import read_dataset
from training.fingerprint import definitions_fingerprint
from training.model_matrix import model_matrix
from training.registry import TEST_AUC, promote, register

data = read_dataset("data/training")
x, y = model_matrix(data), data["default_30d"].to_numpy()
model = ScoringModel(
    estimator=make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500)).fit(x, y),
    calibrator=None, threshold=0.5, low_max=0.2, medium_max=0.5,
    feature_columns=list(x.columns), feature_service=COLLECTION_RISK_V1,
    definitions_fingerprint=definitions_fingerprint(open_store(get_settings()), COLLECTION_RISK_V1),
)
meta = register(model, {TEST_AUC: 0.7}, {"kind": "logistic"}, {}, {}, "wheel-test")
promote(meta.version)
"""


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new venv holding the locked dependencies and the wheel; yields its bin directory."""
    uv = shutil.which("uv") or pytest.fail("uv is needed to build the test's environment")
    root = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    # Built from a copy of the sources: a build writes build/ and *.egg-info beside them.
    source = root / "source"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    _run([uv, "build", "-q", "--wheel", "--out-dir", str(root / "dist"), str(source)], root, env)
    (wheel,) = (root / "dist").glob("collectwise-*.whl")
    venv = root / "venv"
    _run([uv, "venv", "-q", "--python", sys.executable, str(venv)], root, env)
    python = str(venv / "bin" / "python")
    _run([uv, "pip", "sync", "-q", "--python", python, str(REPO_ROOT / "requirements.lock")],
         root, env)  # fmt: skip
    _run([uv, "pip", "install", "-q", "--no-deps", "--python", python, str(wheel)], root, env)
    yield venv / "bin"


def _clean_env(bin_dir: Path, home: Path) -> dict[str, str]:
    """No setting of this run's environment leaks in; the home is the working directory."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COLLECTWISE_", "FEAST_", "MLFLOW_", "VIRTUAL_ENV", "PYTHON"))
    }
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    return env


def test_the_wheel_runs_the_pipeline_from_a_home_outside_the_checkout(
    installed: Path, tmp_path: Path
) -> None:
    home = tmp_path / "project"
    home.mkdir()
    assert REPO_ROOT not in home.parents
    env = _clean_env(installed, home)
    cw = str(installed / "collectwise")
    steps = [
        ["init"],
        ["generate", "--accounts", "300", "--months", "8", "--seed", "5"],
        ["validate"],
        ["build-features"],
        ["apply"],
        ["materialize"],
        ["train", "build-dataset"],
    ]
    for step in steps:
        _run([cw, *step], home, env)
    (home / "register.py").write_text(textwrap.dedent(REGISTER))
    _run([str(installed / "python"), "register.py"], home, env)
    profile = pd.read_parquet(home / "data" / "features" / "account_profile.parquet")
    newest = profile[profile["event_timestamp"] == profile["event_timestamp"].max()]
    ids = sorted(newest["account_id"].astype(str))[:20]
    pd.DataFrame({"account_id": ids}).to_csv(home / "ids.csv", index=False)
    _run([cw, "score-batch", "--in", "ids.csv", "--out", "scores.csv"], home, env)

    scores = pd.read_csv(home / "scores.csv")
    assert sorted(scores["account_id"].astype(str)) == ids
    assert scores["probability"].between(0, 1).all()
    # Everything the run wrote lies under the home: nothing went beside the installed files.
    assert (home / "mlflow.db").is_file() and (home / "data" / "registry.db").is_file()
    site = next((installed.parent / "lib").glob("python3.*/site-packages"))
    assert not (site / "data").exists() and not (site / "mlflow.db").exists()
