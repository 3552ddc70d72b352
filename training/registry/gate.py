"""Moving the champion: the promotion gate, promote, rollback and the champion history.

Aliases carry the state the scorer watches: the gate moves `champion` (the old champion
becomes `previous-champion`); rollback moves it back. Every alias move is a single registry
write, so a scorer polling `resolve_alias` always sees a complete version.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from collectwise.settings import MlflowSettings
from training.registry.bars import failed, recorded_checks, summary
from training.registry.clients import client_and_settings
from training.registry.lineage import UNKNOWN
from training.registry.versions import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    TEST_AUC,
    IncomparableTestSets,
    ModelMetadata,
    PromotionRefused,
    RegistryError,
    absent,
    alias_version,
    load_bundle_of,
    metadata_of,
    resolve_alias,
    show,
)
from training.scoring_model import ScoringModel

log = logging.getLogger(__name__)

# Registered-model tags: the promotion / rollback log and the stack rollback walks back.
HISTORY_TAG = "champion_history"
STACK_TAG = "champion_stack"
_HISTORY_KEEP = 200
_ROLLBACK_TAGS = frozenset({"rolled_back_by", "rolled_back_at", "rolled_back_why"})
# Another gate's judgement (candidate, champion) -> the reason; raises PromotionRefused.
Evidence = Callable[[ModelMetadata, ModelMetadata | None], str]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class _Decision:
    reason: str
    champion_auc: float | None


def _candidate(client: MlflowClient, name: str, version: str | int | None) -> ModelMetadata:
    if version is None and alias_version(client, name, CHALLENGER) is None:
        raise RegistryError(f"{name} has no {CHALLENGER}: name the version to promote")
    return metadata_of(client, name, CHALLENGER if version is None else version)


def _champion_auc(
    client: MlflowClient,
    candidate: ModelMetadata,
    champion: ModelMetadata,
    evaluate_champion: Callable[[ScoringModel], float] | None,
) -> tuple[float, str]:
    """The champion's test AUC on the candidate's test set, and how it was obtained."""
    same = champion.test_set_fingerprint == candidate.test_set_fingerprint != UNKNOWN
    if same and champion.test_auc is not None:
        return champion.test_auc, f"same test set {candidate.test_set_fingerprint}"
    if evaluate_champion is None:
        raise IncomparableTestSets(
            f"cannot compare: candidate v{candidate.version} (test AUC {candidate.test_auc}) was "
            f"tested on {candidate.test_set_fingerprint}, champion v{champion.version} (test AUC "
            f"{champion.test_auc}) on {champion.test_set_fingerprint}; re-score the champion on "
            "the candidate's test set (evaluate_champion) or promote with --force"
        )
    auc = float(evaluate_champion(load_bundle_of(client, champion)))
    log.info("re-scored champion v%s on the candidate's test set: AUC %.4f", champion.version, auc)
    return auc, f"champion re-scored on test set {candidate.test_set_fingerprint}"


def _gate(
    client: MlflowClient,
    candidate: ModelMetadata,
    champion: ModelMetadata | None,
    margin: float,
    evaluate_champion: Callable[[ScoringModel], float] | None,
    live_fingerprint: Callable[[str], str] | None = None,
) -> _Decision:
    if candidate.test_auc is None:
        raise PromotionRefused(f"v{candidate.version} has no {TEST_AUC} tag to compare")
    servable = _servable_decision(candidate, champion, live_fingerprint)
    if servable is not None:
        return servable
    if champion is None:
        return _Decision(f"first champion (test AUC {candidate.test_auc:.4f})", None)
    champion_auc, basis = _champion_auc(client, candidate, champion, evaluate_champion)
    gain = candidate.test_auc - champion_auc
    summary = (
        f"candidate v{candidate.version} test AUC {candidate.test_auc:.4f} vs champion "
        f"v{champion.version} {champion_auc:.4f} ({basis}): gain {gain:+.4f}, margin {margin:.4f}"
    )
    # A hair of tolerance so a gain of exactly the margin is not lost to float rounding.
    if gain + 1e-12 < margin:
        raise PromotionRefused(f"promotion refused: {summary}")
    return _Decision(summary, champion_auc)


def _servable_decision(
    candidate: ModelMetadata,
    champion: ModelMetadata | None,
    live_fingerprint: Callable[[str], str] | None,
) -> _Decision | None:
    """Against the live feature definitions (when given): a candidate the scorer would
    refuse is never promoted; one that replaces a champion the scorer already refuses is
    promoted without the AUC comparison, since the alternative is serving nothing."""
    if live_fingerprint is None:
        return None
    live = live_fingerprint(candidate.feature_service)
    if candidate.definitions_fingerprint != live:
        raise PromotionRefused(
            f"promotion refused: v{candidate.version} was trained on feature definitions of "
            f"{candidate.feature_service} that are not live (model "
            f"{candidate.definitions_fingerprint[:12]}, live registry {live[:12]}): the "
            "scorer would not serve it; retrain it"
        )
    if champion is None:
        return None
    if champion.definitions_fingerprint != live_fingerprint(champion.feature_service):
        return _Decision(
            f"champion v{champion.version} cannot be served: the feature definitions it was "
            f"trained on changed; v{candidate.version} matches the live registry "
            f"(test AUC {candidate.test_auc:.4f})",
            None,
        )
    return None


def _read_json_tag(client: MlflowClient, name: str, key: str) -> list[Any]:
    value = client.get_registered_model(name).tags.get(key)
    try:
        loaded = json.loads(value) if value else []
    except ValueError:
        return []
    return loaded if isinstance(loaded, list) else []


def _record(client: MlflowClient, name: str, event: dict[str, Any], stack: list[int]) -> None:
    """Append to the champion history and save the rollback stack (both model-level tags)."""
    history = [*_read_json_tag(client, name, HISTORY_TAG), event][-_HISTORY_KEEP:]
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    client.set_registered_model_tag(name, STACK_TAG, json.dumps(stack[-_HISTORY_KEEP:]))


def _move_champion(
    client: MlflowClient, candidate: ModelMetadata, champion: ModelMetadata | None
) -> None:
    """previous-champion first, then champion: the champion alias is never left unset."""
    name, version = candidate.name, str(candidate.version)
    if champion is not None:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, str(champion.version))
        client.set_model_version_tag(name, str(champion.version), "superseded_by", version)
        client.set_model_version_tag(name, str(champion.version), "superseded_at", _now())
    client.set_registered_model_alias(name, CHAMPION, version)
    if CHALLENGER in candidate.aliases:
        client.delete_registered_model_alias(name, CHALLENGER)


def promote(
    version: str | int | None = None,
    *,
    margin: float | None = None,
    force: bool = False,
    who: str | None = None,
    why: str | None = None,
    evaluate_champion: Callable[[ScoringModel], float] | None = None,
    live_fingerprint: Callable[[str], str] | None = None,
    evidence: Evidence | None = None,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> ModelMetadata:
    """Make `version` (default: the challenger) the champion if it passes the gate.

    The gate: test AUC at least `margin` (default settings.promotion_margin) above the
    champion's on the same test set (same test_set_fingerprint tag), or on the candidate's
    test set through `evaluate_champion` when the fingerprints differ. With
    `live_fingerprint` (feature service -> the live registry's definitions fingerprint) it
    first checks what the scorer checks: a candidate trained on other definitions is
    refused, and one replacing a champion trained on other definitions passes. A version
    whose recorded gate checks failed (out-of-time F1, AUC against the oracle: see
    training.registry.bars) is refused before any comparison. force=True skips the gate
    and needs who and why. `evidence` (candidate, champion -> the reason, or
    PromotionRefused) replaces the test-set AUC comparison, e.g. with a champion /
    challenger experiment on live outcomes; the live-definitions check still comes first.
    Raises PromotionRefused / IncomparableTestSets.
    """
    client, settings = client_and_settings(client, settings)
    name = settings.registered_model_name
    if force:
        _require_who_why(who, why, "a forced promotion")
    candidate = _candidate(client, name, version)
    current = resolve_alias(CHAMPION, client=client, settings=settings)
    if current == candidate.version:
        raise RegistryError(f"{name} v{candidate.version} is already the {CHAMPION}")
    champion = None if current is None else metadata_of(client, name, current)
    if not force:
        _check_quality(candidate)
    if force:
        decision = _Decision(f"forced: {why}", None)
    elif evidence is not None:
        servable = _servable_decision(candidate, champion, live_fingerprint)
        decision = servable or _Decision(evidence(candidate, champion), None)
    else:
        margin = settings.promotion_margin if margin is None else margin
        decision = _gate(client, candidate, champion, margin, evaluate_champion, live_fingerprint)
    _tag_promotion(client, candidate, decision, who, forced=force)
    _move_champion(client, candidate, champion)
    stack = [int(v) for v in _read_json_tag(client, name, STACK_TAG)]
    event = _event("promote", candidate.version, current, who or "promotion-gate", decision.reason)
    _record(client, name, {**event, "forced": force}, [*stack, candidate.version])
    log.info("%s v%s is now %s: %s", name, candidate.version, CHAMPION, decision.reason)
    return show(candidate.version, client=client, settings=settings)


def _check_quality(candidate: ModelMetadata) -> None:
    """Refuse a version whose recorded gate checks (training.registry.bars) failed."""
    checks = recorded_checks(candidate.tags)
    if failed(checks):
        raise PromotionRefused(
            f"promotion refused: v{candidate.version} fails its gate checks "
            f"({summary(checks)}); retrain it, or promote with --force and a reason"
        )


def _require_who_why(who: str | None, why: str | None, what: str) -> None:
    if not (who and who.strip() and why and why.strip()):
        raise ValueError(f"{what} needs who and why (recorded on the version)")


def _event(action: str, version: int, previous: int | None, who: str, why: str) -> dict[str, Any]:
    return {
        "action": action,
        "version": version,
        "from": previous,
        "at": _now(),
        "by": who,
        "reason": why,
    }


def _tag_promotion(
    client: MlflowClient,
    candidate: ModelMetadata,
    decision: _Decision,
    who: str | None,
    *,
    forced: bool,
) -> None:
    tags = {
        "promoted_at": _now(),
        "promoted_by": who or "promotion-gate",
        "promotion_reason": decision.reason,
        "promotion_forced": str(forced).lower(),
    }
    if decision.champion_auc is not None:
        tags["champion_auc_at_promotion"] = repr(decision.champion_auc)
    for key, value in tags.items():
        client.set_model_version_tag(candidate.name, str(candidate.version), key, value)
    # A version rolled back once and promoted again is no longer "rolled back"; the champion
    # history keeps the rollback.
    for key in _ROLLBACK_TAGS & candidate.tags.keys():
        client.delete_model_version_tag(candidate.name, str(candidate.version), key)


def _previous_after_rollback(stack: list[int], restored: int) -> tuple[list[int], int | None]:
    """Pop the rolled-back champion; the one below the restored version is the next fallback."""
    if restored not in stack:  # aliases were moved by hand: trust them, start a fresh stack
        return [restored], None
    stack = stack[: len(stack) - stack[::-1].index(restored)]
    return stack, (stack[-2] if len(stack) >= 2 else None)


def rollback(
    who: str,
    why: str,
    *,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> ModelMetadata:
    """Make `previous-champion` the champion again and mark the current one rolled back."""
    client, settings = client_and_settings(client, settings)
    name = settings.registered_model_name
    _require_who_why(who, why, "a rollback")
    restored = resolve_alias(PREVIOUS_CHAMPION, client=client, settings=settings)
    if restored is None:
        raise RegistryError(f"{name} has no {PREVIOUS_CHAMPION} to roll back to")
    current = resolve_alias(CHAMPION, client=client, settings=settings)
    client.set_registered_model_alias(name, CHAMPION, str(restored))
    if current is not None:
        tags = {"rolled_back_by": who, "rolled_back_at": _now(), "rolled_back_why": why}
        for key, value in tags.items():
            client.set_model_version_tag(name, str(current), key, value)
    stack = [int(v) for v in _read_json_tag(client, name, STACK_TAG)]
    stack, previous = _previous_after_rollback(stack, restored)
    if previous is None:
        client.delete_registered_model_alias(name, PREVIOUS_CHAMPION)
    else:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, str(previous))
    _record(client, name, _event("rollback", restored, current, who, why), stack)
    log.info("%s rolled back from v%s to v%s by %s", name, current, restored, who)
    return show(restored, client=client, settings=settings)


def champion_history(
    *, client: MlflowClient | None = None, settings: MlflowSettings | None = None
) -> list[dict[str, Any]]:
    """Promotions and rollbacks, oldest first (for the console's audit view)."""
    client, settings = client_and_settings(client, settings)
    try:
        return _read_json_tag(client, settings.registered_model_name, HISTORY_TAG)
    except MlflowException as exc:
        if not absent(exc):
            raise
        return []
