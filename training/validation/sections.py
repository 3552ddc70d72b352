"""The validation report's first sections: data and lineage, conceptual soundness, and
discrimination and calibration overall, by segment and per snapshot month.

Each function takes the gathered ValidationInputs and returns a JSON-ready dict.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feature_repo.transformations import LABEL_WINDOW_DAYS
from training.dataset import LABEL_COL, PROTECTED_PREFIX
from training.evaluate import calibration_table
from training.model_matrix import (
    EXCLUDED_FEATURES,
    MONOTONE_DECREASING,
    MONOTONE_INCREASING,
    column_sources,
)
from training.validation.inputs import ValidationInputs
from training.validation.stats import group_figures

SEGMENT_PREFIX = "segment__"
# Why a direction is imposed (the domain knowledge of training.model_matrix).
WHY_INCREASING = "longer or deeper arrears and broken promises never lower the risk"
WHY_DECREASING = (
    "paying faster and more regularly, keeping promises, answering contacts and having "
    "income to spare never raise the risk"
)
WHY_EXCLUDED = "not a model input: its information is in other features or it is a timestamp"
# Boosters that enforce monotone constraints while growing trees.
CONSTRAINED_KINDS = ("xgboost", "lightgbm")


# --- data and lineage -----------------------------------------------------------------


def data_lineage(inp: ValidationInputs) -> dict[str, Any]:
    s = inp.summary
    used = len(inp.split.train) + len(inp.split.valid) + len(inp.split.test)
    last = datetime.fromisoformat(s.snapshots["max"])
    return {
        "sources": dict(s.sources),
        "feature_service": s.service_name,
        "splitter": inp.splitter_kind,
        # The generator's oracle exists only for synthetic data.
        "synthetic": s.has_oracle,
        "fingerprints": {
            "dataset": s.dataset_fingerprint,
            "feature definitions": s.definitions_fingerprint,
            "labels file (sha256)": s.labels_sha256,
            "feature build manifest (sha256)": s.features_manifest_sha256,
            "model data fingerprint": str(inp.bundle.metadata.get("data_fingerprint", "")),
        },
        "rows": {
            "total": s.rows,
            "defaults": s.positives,
            "default rate": s.positives / max(s.rows, 1),
            "train": len(inp.split.train),
            "valid": len(inp.split.valid),
            "test": len(inp.split.test),
            "in no split (other side's accounts, immature labels)": s.rows - used,
        },
        "snapshots": {**s.snapshots, "months": sorted(inp.month.unique().tolist())},
        "label": {
            "name": LABEL_COL,
            "window_days": LABEL_WINDOW_DAYS,
            "grace_days": inp.params.label_grace_days,
            "outcomes_known_until": (last + timedelta(days=LABEL_WINDOW_DAYS)).isoformat(),
        },
        "quality": quality_summary(inp.quality, inp.quality_path),
    }


def quality_summary(quality: dict[str, Any] | None, path: str | None) -> dict[str, Any] | None:
    """Per raw table: rows read, kept and quarantined, and the commonest reasons."""
    if quality is None:
        return None
    tables = [
        {"table": name, **t.get("counts", {}), "status": t.get("status")}
        for name, t in (quality.get("tables") or {}).items()
    ]
    return {
        "path": path,
        "status": quality.get("status"),
        "generated_at": quality.get("generated_at"),
        "totals": quality.get("totals", {}),
        "tables": tables,
        "top_reasons": quality.get("top_quarantine_reasons", []),
    }


# --- conceptual soundness -------------------------------------------------------------


@cache
def feature_catalogue(service_name: str) -> dict[str, dict[str, str]]:
    """Full feature name -> view, type and the description written in feature_repo."""
    from feature_repo.definitions import build_definitions  # noqa: PLC0415

    services = {s.name: s for s in build_definitions(Path(".")).services}
    return {
        f"{p.name_to_use()}__{f.name}": {
            "view": p.name_to_use(),
            "type": str(f.dtype),
            "description": f.description or "",
        }
        for p in services[service_name].feature_view_projections
        for f in p.features
    }


def soundness(inp: ValidationInputs) -> dict[str, Any]:
    sources = column_sources(inp.bundle.feature_service)
    kind = str(inp.bundle.metadata.get("kind", "unknown"))
    features = [
        _feature_row(name, info, sources)
        for name, info in feature_catalogue(inp.bundle.feature_service).items()
    ]
    protected_inputs = [c for c in inp.bundle.feature_columns if c.startswith(PROTECTED_PREFIX)]
    return {
        "model_kind": kind,
        "imbalance": inp.bundle.metadata.get("imbalance"),
        "calibration": inp.bundle.metadata.get("calibration"),
        "constraints_enforced": kind in CONSTRAINED_KINDS,
        "model_columns": len(inp.bundle.feature_columns),
        "features": features,
        "protected_inputs": protected_inputs,
        "monotone_reasons": {"increasing": WHY_INCREASING, "decreasing": WHY_DECREASING},
    }


def _feature_row(name: str, info: dict[str, str], sources: dict[str, str]) -> dict[str, Any]:
    direction = 1 if name in MONOTONE_INCREASING else -1 if name in MONOTONE_DECREASING else 0
    why = {1: WHY_INCREASING, -1: WHY_DECREASING, 0: ""}[direction]
    return {
        "feature": name,
        "view": info["view"],
        "type": info["type"],
        "description": info["description"] or "(no description in feature_repo)",
        "model_columns": sum(1 for s in sources.values() if s == name),
        "monotone": direction,
        "why": WHY_EXCLUDED if name in EXCLUDED_FEATURES else why,
    }


# --- discrimination and calibration ---------------------------------------------------


def performance(inp: ValidationInputs) -> dict[str, Any]:
    threshold = inp.bundle.threshold
    part = inp.part
    test = part == "test"
    return {
        "threshold": threshold,
        "overall": {
            name: group_figures(inp.y[part == name], inp.p[part == name], threshold)
            for name in ("train", "valid", "test")
        },
        "calibration_curve": calibration_table(inp.y[test], inp.p[test]),
        "segments": segments(inp, test),
        "months": months(inp),
    }


def segment_columns(inp: ValidationInputs) -> dict[str, np.ndarray]:
    """Segment name -> value per row: the score band always, product and region if joined."""
    found = {"band": inp.band}
    for column in inp.frame.columns:
        if str(column).startswith(SEGMENT_PREFIX):
            values = inp.frame[column].astype("object").fillna("unknown")
            found[str(column).removeprefix(SEGMENT_PREFIX)] = values.to_numpy()
    return found


def segments(inp: ValidationInputs, rows: np.ndarray) -> dict[str, list[dict[str, Any]]]:
    """Test-row figures per value of each segment."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, values in segment_columns(inp).items():
        out[name] = [
            {
                "group": str(group),
                **group_figures(inp.y[inside], inp.p[inside], inp.bundle.threshold),
            }
            for group in sorted(pd.unique(values[rows]), key=str)
            for inside in [rows & (values == group)]
        ]
    return out


def months(inp: ValidationInputs) -> list[dict[str, Any]]:
    """Figures per snapshot month, every row; `part` says which were in-sample."""
    month, part = inp.month.to_numpy(), inp.part
    rows = []
    for value in sorted(pd.unique(month)):
        inside = month == value
        parts = sorted(set(part[inside]))
        rows.append(
            {
                "month": str(value),
                "part": "/".join(parts),
                **group_figures(inp.y[inside], inp.p[inside], inp.bundle.threshold),
            }
        )
    return rows
