"""The models page: registered versions as table rows, metrics side by side, lineage, and
the promote / rollback decisions turned into messages.

The gate itself is training.registry.promote's; these functions only call what they are
given and say what happened, so the refusal a person reads is the gate's own message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from admin_app.logic import outcome
from admin_app.logic.outcome import Outcome

if TYPE_CHECKING:
    from training.registry import ModelMetadata as Meta

HEADLINE = ("test_roc_auc", "test_pr_auc", "test_f1", "test_brier")
MIN_REASON = 5


def _short(value: str | None, n: int = 12) -> str:
    return (value or "")[:n]


def version_rows(metas: Sequence[Meta]) -> list[dict[str, Any]]:
    """One grid row per version, newest first as given."""
    rows = []
    for m in metas:
        row: dict[str, Any] = {
            "version": m.version,
            "aliases": ", ".join(m.aliases) or "-",
            "status": m.status,
            "created": m.created.strftime("%Y-%m-%d %H:%M") if m.created else "",
            "threshold": round(m.threshold, 4) if m.threshold == m.threshold else None,
            "calibration": m.calibration,
            "feature_service": m.feature_service,
            "fingerprint": _short(m.definitions_fingerprint),
            "data_hash": _short(m.dvc_data_hash),
            "git_commit": _short(m.git_commit, 10),
            "promoted_by": m.promoted_by or "",
        }
        for key in HEADLINE:
            value = m.metrics.get(key)
            row[key] = None if value is None else round(float(value), 4)
        rows.append(row)
    return rows


def metrics_side_by_side(metas: Sequence[Meta]) -> list[dict[str, Any]]:
    """Rows of metric name and one column per version ("v3"), every metric any version has."""
    names = sorted({k for m in metas for k in m.metrics}, key=lambda k: (k not in HEADLINE, k))
    rows = []
    for name in names:
        row: dict[str, Any] = {"metric": name}
        for m in metas:
            value = m.metrics.get(name)
            row[f"v{m.version}"] = None if value is None else round(float(value), 4)
        rows.append(row)
    return rows


def lineage(meta: Meta) -> list[tuple[str, str]]:
    """Label and value pairs: where the version came from and what it serves."""
    git_dirty = meta.tags.get("git_dirty")
    commit = meta.git_commit + (" (uncommitted changes)" if git_dirty == "true" else "")
    bands = ", ".join(f"{k} {v:.3f}" for k, v in meta.bands.items()) or "unknown"
    return [
        ("feature service", meta.feature_service),
        ("definitions fingerprint", meta.definitions_fingerprint),
        ("data fingerprint", meta.data_fingerprint),
        ("DVC data hash", meta.dvc_data_hash),
        ("git commit", commit),
        ("test set", meta.test_set_fingerprint),
        ("threshold", f"{meta.threshold:.4f}"),
        ("bands", bands),
        ("calibration", meta.calibration),
        ("promoted", f"{meta.promoted_at or '-'} by {meta.promoted_by or '-'}"),
        ("promotion reason", meta.promotion_reason or "-"),
        ("data drift score", _drift(meta.tags)),
    ]


def _drift(tags: Mapping[str, str]) -> str:
    # Written by the drift job (training.registry.record_data_drift); absent until one ran.
    score = tags.get("data_drift_score")
    if score is None:
        return "no drift run yet"
    return f"{float(score):.3f} (window to {tags.get('data_drift_at', '?')})"


def check_reason(why: str | None) -> str:
    """The reason, stripped; a promotion or rollback is always recorded with one."""
    text = (why or "").strip()
    if len(text) < MIN_REASON:
        raise ValueError(f"say why (at least {MIN_REASON} characters): it is recorded")
    return text


def promote(
    do: Callable[..., Meta],
    version: int | None,
    who: str,
    why: str | None,
    force: bool,
    errors: tuple[type[BaseException], ...],
    refusals: tuple[type[BaseException], ...],
) -> Outcome:
    """Run the registry's promote; its gate refusal comes back as the message."""
    if version is None:
        return outcome.error("choose a version to promote")
    caught: tuple[type[BaseException], ...] = (*errors, ValueError)
    try:
        reason = check_reason(why)
        meta = do(version, force=force, who=who, why=reason)
    except refusals as exc:
        return outcome.refused(str(exc))
    except caught as exc:
        return outcome.error(str(exc))
    forced = " (forced, gate skipped)" if force else ""
    return outcome.ok(f"v{meta.version} is now the champion{forced}: {meta.promotion_reason}")


def rollback(
    do: Callable[..., Meta],
    who: str,
    why: str | None,
    errors: tuple[type[BaseException], ...],
) -> Outcome:
    caught: tuple[type[BaseException], ...] = (*errors, ValueError)
    try:
        reason = check_reason(why)
        meta = do(who, reason)
    except caught as exc:
        return outcome.error(str(exc))
    return outcome.ok(f"rolled back: v{meta.version} is the champion again")


def history_rows(history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The champion history newest first, for a grid."""
    rows = []
    for event in reversed(history):
        rows.append(
            {
                "at": event.get("at", ""),
                "action": event.get("action", ""),
                "version": event.get("version"),
                "from": event.get("from"),
                "by": event.get("by", ""),
                "reason": event.get("reason", ""),
                "forced": bool(event.get("forced", False)),
            }
        )
    return rows


def promotable(metas: Sequence[Meta]) -> list[int]:
    """Versions that are not the champion, newest first (the challenger leads)."""
    challenger = [m.version for m in metas if "challenger" in m.aliases]
    others = [
        m.version for m in metas if "champion" not in m.aliases and m.version not in challenger
    ]
    return challenger + others
