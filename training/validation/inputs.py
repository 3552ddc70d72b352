"""What a validation report is computed from, gathered once: the training set with its split,
the model's scores on every row, the segments, the data quality report and the incumbent.

Segments (product, region) are not model inputs and not in the training set; they are
joined here from the validated raw tables the set was built from, when those still exist.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ingestion.features import connect
from ingestion.rawio import has_table, table_glob
from training.dataset import DatasetSummary, read_summary
from training.evaluate import assign_bands
from training.scoring_model import ScoringModel
from training.splits import Split
from training.train import FIT_SUMMARY, TrainParams, prepare

log = logging.getLogger(__name__)

QUALITY_JSON = "quality.json"


@dataclass
class Incumbent:
    """Another registered version to benchmark against (e.g. the champion)."""

    label: str
    model: ScoringModel


@dataclass
class ValidationInputs:
    frame: pd.DataFrame
    x: pd.DataFrame
    y: np.ndarray
    p: np.ndarray
    split: Split
    splitter_kind: str
    bundle: ScoringModel
    summary: DatasetSummary
    params: TrainParams
    model_label: str
    fitted: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] | None = None
    quality_path: str | None = None
    incumbent: Incumbent | None = None

    @property
    def part(self) -> np.ndarray:
        """train / valid / test / excluded per row (excluded: immature or unused rows)."""
        part = np.full(len(self.frame), "excluded", dtype=object)
        for name in ("train", "valid", "test"):
            part[getattr(self.split, name)] = name
        return part

    @property
    def month(self) -> pd.Series:
        return self.frame["event_timestamp"].dt.strftime("%Y-%m")

    @property
    def band(self) -> np.ndarray:
        return assign_bands(self.p, (self.bundle.low_max, self.bundle.medium_max))


def gather(
    dataset_dir: Path,
    bundle: ScoringModel,
    params: TrainParams,
    *,
    model_label: str,
    model_dir: Path | None = None,
    quality_path: Path | None = None,
    incumbent: Incumbent | None = None,
) -> ValidationInputs:
    """Read the set, score every row once, join the segments and the quality report."""
    data = prepare(Path(dataset_dir), params)
    summary = read_summary(Path(dataset_dir))
    frame = with_segments(data.frame, summary)
    quality_file = quality_path or find_quality_report(summary)
    return ValidationInputs(
        frame=frame,
        x=data.x,
        y=data.y,
        p=bundle.predict_proba(data.x),
        split=data.split,
        splitter_kind=data.splitter_kind,
        bundle=bundle,
        summary=summary,
        params=params,
        model_label=model_label,
        fitted=_fit_summary(model_dir),
        quality=_read_json(quality_file),
        quality_path=str(quality_file) if quality_file else None,
        incumbent=incumbent,
    )


def _fit_summary(model_dir: Path | None) -> dict[str, Any]:
    loaded = _read_json(Path(model_dir) / FIT_SUMMARY if model_dir else None)
    return loaded or {}


def _read_json(path: Path | None) -> dict[str, Any] | None:
    if path is None or not Path(path).is_file():
        return None
    loaded = json.loads(Path(path).read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else None


def find_quality_report(summary: DatasetSummary) -> Path | None:
    """The validation step's quality.json for the raw data the set was built from: in a
    `reports` folder beside the data, or where dvc.yaml puts it (data/ -> reports/quality,
    data_uci/ -> reports/quality_uci)."""
    raw = summary.sources.get("raw_dir")
    if not raw:
        return None
    root = Path(raw).parent
    pipeline = root.parent / "reports" / f"quality{root.name.removeprefix('data')}"
    for candidate in (root / "reports", pipeline):
        if (candidate / QUALITY_JSON).is_file():
            return candidate / QUALITY_JSON
    log.info("no data quality report found near %s", raw)
    return None


def with_segments(frame: pd.DataFrame, summary: DatasetSummary) -> pd.DataFrame:
    """The frame with `segment__product` and `segment__region` when the raw tables exist."""
    raw = Path(summary.sources.get("raw_dir", ""))
    if not summary.sources.get("raw_dir") or not all(
        has_table(raw, t) for t in ("accounts", "customers")
    ):
        log.info("no raw accounts under %r: segments by product and region left out", str(raw))
        return frame
    segments = _query(
        "SELECT a.account_id, a.product AS segment__product, c.region AS segment__region "  # nosec B608  # constant column names; the paths are the pipeline's own
        f"FROM read_parquet('{table_glob(raw, 'accounts')}') a "
        f"LEFT JOIN read_parquet('{table_glob(raw, 'customers')}') c USING (customer_id)"
    ).drop_duplicates("account_id")
    joined = frame.merge(segments, on="account_id", how="left", validate="many_to_one")
    return joined.set_index(frame.index)


def _query(sql: str) -> pd.DataFrame:
    con = connect()
    try:
        return con.execute(sql).df()
    finally:
        con.close()
