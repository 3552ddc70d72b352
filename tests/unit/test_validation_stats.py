"""The validation report's figures on hand-made data: PSI, calibration error, group figures."""

from __future__ import annotations

import numpy as np
import pytest

from training.validation.render import PdfRenderError, chromium_path
from training.validation.stats import expected_calibration_error, group_figures, psi, psi_label

pytestmark = pytest.mark.unit

rng = np.random.default_rng(0)


def test_psi_is_near_zero_for_one_population_and_large_for_a_moved_one() -> None:
    reference = rng.normal(size=5000)
    assert psi(reference, rng.normal(size=5000)) == pytest.approx(0.0, abs=0.02)
    moved = psi(reference, rng.normal(loc=1.0, size=5000))
    assert moved is not None and moved > 0.25 and psi_label(moved) == "changed"


def test_psi_counts_missing_values_as_their_own_bin() -> None:
    reference = rng.normal(size=2000)
    current = reference.copy()
    current[:600] = np.nan
    shifted = psi(reference, current)
    assert shifted is not None and shifted > 0.1
    assert psi([], [1.0]) is None


def test_psi_of_a_constant_column_is_finite() -> None:
    assert psi(np.ones(100), np.ones(50)) == pytest.approx(0.0)
    assert psi(np.ones(100), np.zeros(50)) == pytest.approx(psi(np.ones(100), np.full(50, 2.0)))


def test_calibration_error_is_zero_when_scores_match_rates() -> None:
    p = np.repeat([0.1, 0.5, 0.9], 1000)
    y = np.concatenate([rng.random(1000) < q for q in (0.1, 0.5, 0.9)]).astype(int)
    assert expected_calibration_error(y, p) < 0.03
    assert expected_calibration_error(y, np.clip(p + 0.3, 0, 1)) > 0.2


def test_group_figures_leave_auc_undefined_for_one_class() -> None:
    figures = group_figures([0, 0, 0], [0.1, 0.2, 0.9], threshold=0.5)
    assert figures["roc_auc"] is None and figures["n"] == 3 and figures["defaults"] == 0
    both = group_figures([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], threshold=0.5)
    assert both["roc_auc"] == 1.0 and both["f1"] == 1.0
    assert group_figures([], [], threshold=0.5) == {"n": 0}


def test_a_missing_chromium_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("training.validation.render.shutil.which", lambda _name: None)
    with pytest.raises(PdfRenderError, match="chromium"):
        chromium_path()
