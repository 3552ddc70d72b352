"""The audit page: scored-account rows and console actions as grid rows, a text search,
and the hash chain's verification in words."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from admin_app.logic.monitoring import stamp


def score_rows(rows: Iterable[Any]) -> list[dict[str, Any]]:
    """serving.audit.AuditRow objects (newest first) as grid rows."""
    out = []
    for r in rows:
        out.append(
            {
                "seq": r.seq,
                "scored_at": stamp(r.scored_at),
                "request_id": r.request_id,
                "account_id": r.account_id,
                "caller": r.caller,
                "route": r.route,
                "model": f"{r.model_name} v{r.model_version} ({r.model_alias})",
                "probability": None if r.probability != r.probability else round(r.probability, 4),
                "band": r.band,
                "decision": "flag" if r.decision else "no flag",
                "degraded": r.degraded,
                "intact": r.intact,
                "row_hash": r.row_hash[:16],
            }
        )
    return out


def action_rows(actions: Iterable[Any]) -> list[dict[str, Any]]:
    """admin_app.actions.Action objects as grid rows."""
    return [
        {
            "id": a.id,
            "at": stamp(a.at),
            "who": a.who,
            "action": a.action,
            "target": a.target or "",
            "outcome": a.outcome,
            "detail": a.detail or "",
        }
        for a in actions
    ]


def search(rows: Sequence[dict[str, Any]], query: str | None) -> list[dict[str, Any]]:
    """Rows where every word of the query appears in some field (case-insensitive)."""
    words = (query or "").lower().split()
    if not words:
        return list(rows)
    out = []
    for row in rows:
        text = " ".join("" if v is None else str(v) for v in row.values()).lower()
        if all(w in text for w in words):
            out.append(row)
    return out


def verification_text(result: Any) -> tuple[str, str]:
    """(message, Bootstrap colour) for serving.audit.VerifyResult."""
    if result.ok:
        return f"Hash chain verified: {result.rows} rows intact.", "success"
    return result.summary(), "danger"
