"""The models being served, and blue-green moves between them by registry alias.

`ModelSet` is immutable: a request takes the current set once and finishes on it, while the
watcher builds a new set in the background (load, explainer, warm-up, fingerprint check)
and swaps one reference. A promotion or rollback in the registry thus reaches the scorer
without a restart, and never in the middle of a request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from collectwise.errors import UnavailableError
from training.explain import TreeRowExplainer, method_for
from training.reason_codes import UncoveredFeaturesError, check_covered
from training.registry import CHALLENGER, CHAMPION, LoadedModel, load_version, resolve_alias
from training.scoring_model import ScoringModel

log = logging.getLogger(__name__)


class ModelUnavailableError(UnavailableError):
    """No champion is loaded, or its features do not match the live registry (HTTP 503)."""

    kind = "model_unavailable"


@dataclass(frozen=True)
class ServedModel:
    alias: str
    loaded: LoadedModel
    explainer: TreeRowExplainer | None

    @property
    def model(self) -> ScoringModel:
        return self.loaded.model

    @property
    def name(self) -> str:
        return self.loaded.meta.name

    @property
    def version(self) -> int:
        return self.loaded.meta.version

    def contributions(self, x: pd.DataFrame) -> pd.DataFrame | None:
        if self.explainer is None:
            return None
        return self.explainer.contributions(x)[0]


@dataclass(frozen=True)
class ModelSet:
    champion: ServedModel | None
    challenger: ServedModel | None
    problem: str | None = None

    def require_champion(self) -> ServedModel:
        if self.champion is None:
            raise ModelUnavailableError(self.problem or "no champion model is loaded")
        return self.champion

    @property
    def versions(self) -> dict[str, int | None]:
        return {
            CHAMPION: self.champion.version if self.champion else None,
            CHALLENGER: self.challenger.version if self.challenger else None,
        }


def uncovered_reasons(model: ScoringModel) -> str | None:
    """Why a model cannot be served: a feature without a reason code (else None).

    Registration refuses such a model already; the scorer's load check (serving.runtime.
    fingerprint_check) asks again, for versions registered before the table or by other means.
    """
    try:
        check_covered(model.feature_columns, model.feature_service)
    except UncoveredFeaturesError as exc:
        return str(exc)
    return None


def serve_model(alias: str, loaded: LoadedModel) -> ServedModel:
    """Wrap a loaded version with its explainer and warm it up."""
    model = loaded.model
    explainer = None
    if method_for(model.estimator) == "tree_shap":
        explainer = TreeRowExplainer(model.estimator)
    else:
        log.warning("version %s is not a tree model: scores carry no reason codes", loaded.meta)
    served = ServedModel(alias, loaded, explainer)
    warm_up(served)
    return served


def warm_up(served: ServedModel) -> None:
    """Score and explain a dummy row so the first real request pays no lazy set-up."""
    columns = served.model.feature_columns
    x = pd.DataFrame(np.zeros((1, len(columns))), columns=columns)
    for _ in range(3):
        served.model.predict_proba(x)
        served.contributions(x)


FingerprintCheck = Callable[[ScoringModel], str | None]

# Champions replaced by a promotion stay loaded, this many, so that rolling back to one is a
# swap and not a reload: until a worker has loaded the previous champion again it keeps
# answering with the one that failed (seconds on a busy machine).
KEEP_RETIRED = 2


class ModelWatcher:
    """Holds the current ModelSet and refreshes it when the registry's aliases move."""

    def __init__(
        self,
        check: FingerprintCheck,
        load: Callable[[int], LoadedModel] = load_version,
        resolve: Callable[[str], int | None] = resolve_alias,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        self._check, self._load, self._resolve = check, load, resolve
        self._on_problem = on_problem or (lambda _message: None)
        self._lock = threading.Lock()
        # Versions that failed the check: not reloaded (nor re-alerted) on every poll.
        self._refused: dict[int, str] = {}
        self._retired: dict[int, ServedModel] = {}
        self.current = ModelSet(None, None, "models not loaded yet")

    def refresh(self) -> bool:
        """Load whatever the aliases point at now; True when the served set changed."""
        with self._lock:
            wanted = {alias: self._resolve(alias) for alias in (CHAMPION, CHALLENGER)}
            if wanted == self.current.versions:
                return False
            new = self._build(wanted)
            changed = new.versions != self.current.versions or new.problem != self.current.problem
            self._retire(self.current.champion, new.champion)
            self.current = new
        if changed:
            log.info("serving %s", new.versions if new.problem is None else new.problem)
        return changed

    def _build(self, wanted: dict[str, int | None]) -> ModelSet:
        champion = self._slot(CHAMPION, wanted[CHAMPION], self.current.champion)
        challenger = self._slot(CHALLENGER, wanted[CHALLENGER], self.current.challenger)
        if wanted[CHAMPION] is None:
            return ModelSet(None, challenger, "the registry has no champion yet")
        if champion is None or champion.version != wanted[CHAMPION]:
            problem = self.refused(wanted[CHAMPION]) or f"champion {wanted[CHAMPION]} not loaded"
            # Keep answering with the previous champion if there is one (still consistent).
            return ModelSet(champion, challenger, None if champion else problem)
        return ModelSet(champion, challenger)

    def _slot(self, alias: str, version: int | None, current: ServedModel | None) -> Any:
        if version is None:
            return None
        if current is not None and current.version == version:
            return current
        if alias == CHAMPION and (kept := self._reinstated(version)) is not None:
            return kept
        if version not in self._refused:
            loaded = self._load(version)
            problem = self._check(loaded.model)
            if problem is None:
                return serve_model(alias, loaded)
            self._refused[version] = f"{alias} version {version} not served: {problem}"
            log.error(self._refused[version])
            self._on_problem(self._refused[version])
        return current if alias == CHAMPION else None

    def _retire(self, old: ServedModel | None, new: ServedModel | None) -> None:
        if old is None or (new is not None and new.version == old.version):
            return
        self._retired.pop(old.version, None)
        self._retired[old.version] = old  # newest last: the oldest goes first
        while len(self._retired) > KEEP_RETIRED:
            del self._retired[next(iter(self._retired))]

    def _reinstated(self, version: int) -> ServedModel | None:
        """A retired champion back as champion, if it still passes the load check (the
        definitions may have moved since it was served); else None, and it loads afresh."""
        kept = self._retired.pop(version, None)
        if kept is None or self._check(kept.model) is not None:
            return None
        log.info("champion %s reinstated from memory", version)
        return kept

    def refused(self, version: int | None) -> str | None:
        return self._refused.get(version) if version is not None else None
