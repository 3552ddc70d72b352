"""Serving's pure parts: keys and limits, split assignment, the blue-green model watcher."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from collectwise.settings import ApiKeyEntry, ServingSettings
from serving.auth import AuthError, KeyRing, RateLimitedError, RateLimiter, ScopeError, hash_key
from serving.model_set import ModelWatcher
from serving.scoring import in_challenger_share

pytestmark = pytest.mark.unit


def ring() -> KeyRing:
    return KeyRing(
        [
            ApiKeyEntry(name="platform", sha256=hash_key("k1"), scopes=["score"]),
            ApiKeyEntry(name="ops", sha256=hash_key("k2"), scopes=["admin", "score"]),
        ]
    )


def test_keys_scopes_and_errors() -> None:
    keys = ring()
    assert keys.authorise("k1", "score").name == "platform"
    assert keys.authorise("k2", "admin").name == "ops"
    with pytest.raises(AuthError, match="missing"):
        keys.authorise(None, "score")
    with pytest.raises(AuthError, match="invalid"):
        keys.authorise("k3", "score")
    with pytest.raises(ScopeError, match="admin"):
        keys.authorise("k1", "admin")


def test_settings_reject_a_bad_key_entry() -> None:
    settings = ServingSettings(api_keys='[{"name": "x", "sha256": "not-hex"}]')
    with pytest.raises(ValueError, match="sha256"):
        settings.key_entries()


def test_rate_limiter_refills_per_caller() -> None:
    limiter = RateLimiter(default_rate=60)
    for _ in range(3):
        limiter.take("a", rate=3)
    with pytest.raises(RateLimitedError) as refused:
        limiter.take("a", rate=3)
    assert refused.value.retry_after >= 1
    limiter.take("b", rate=3)  # another caller has its own bucket


def test_split_assignment_is_stable_and_near_the_share() -> None:
    ids = [f"A{i:08d}" for i in range(20_000)]
    picked = [in_challenger_share(a, 0.1) for a in ids]
    assert picked == [in_challenger_share(a, 0.1) for a in ids]
    assert 0.09 < sum(picked) / len(ids) < 0.11
    assert not any(in_challenger_share(a, 0.0) for a in ids[:100])


class FakeRegistry:
    """Aliases and versions in memory; models are bare namespaces the watcher passes on."""

    def __init__(self) -> None:
        self.aliases: dict[str, int | None] = {"champion": 1, "challenger": None}
        self.loads: list[int] = []

    def resolve(self, alias: str) -> int | None:
        return self.aliases[alias]

    def load(self, version: int) -> Any:
        self.loads.append(version)
        model = SimpleNamespace(feature_columns=["x"], fingerprint="bad" if version == 9 else "ok")
        meta = SimpleNamespace(name="m", version=version)
        return SimpleNamespace(model=model, meta=meta)


@pytest.fixture
def watcher(monkeypatch: pytest.MonkeyPatch) -> tuple[ModelWatcher, FakeRegistry, list[str]]:
    fake, problems = FakeRegistry(), []
    monkeypatch.setattr(
        "serving.model_set.serve_model",
        lambda alias, loaded: SimpleNamespace(
            alias=alias, loaded=loaded, model=loaded.model, version=loaded.meta.version
        ),
    )
    w = ModelWatcher(
        check=lambda m: None if m.fingerprint == "ok" else "definitions changed",
        load=fake.load,
        resolve=fake.resolve,
        on_problem=problems.append,
    )
    return w, fake, problems


def test_watcher_moves_by_alias_and_in_flight_sets_stay(watcher: Any) -> None:
    w, fake, _ = watcher
    assert w.refresh() and w.current.versions == {"champion": 1, "challenger": None}
    in_flight = w.current
    fake.aliases = {"champion": 2, "challenger": 1}
    assert w.refresh()
    assert w.current.versions == {"champion": 2, "challenger": 1}
    assert in_flight.versions == {"champion": 1, "challenger": None}  # untouched
    assert not w.refresh()  # nothing moved: nothing reloaded
    assert fake.loads == [1, 2, 1]


def test_watcher_refuses_a_mismatched_champion_once(watcher: Any) -> None:
    w, fake, problems = watcher
    w.refresh()
    fake.aliases["champion"] = 9
    w.refresh()
    w.refresh()
    assert w.current.champion.version == 1  # keeps serving the consistent one
    assert fake.loads.count(9) == 1 and len(problems) == 1
    assert "definitions changed" in problems[0]


def test_columns_read_from_a_transformation_source() -> None:
    import inspect

    from feature_repo.request_features import request_time_features
    from ingestion.ondemand import columns_read

    assert columns_read(inspect.getsource(request_time_features)) == {
        "overdue_since",
        "scoring_time",
        "reported_monthly_income",
        "debt_amount",
        "debt_to_income_ratio",
    }
    # Anything but constant keys and .index: unknown, so every column is given.
    assert columns_read("def f(df):\n    key = 'a'\n    return df[key]") is None
    assert columns_read("def f(df):\n    return helper(df)") is None
    assert columns_read("def f(df):\n    return df.sum()") is None
    assert columns_read("not python (") is None
    assert columns_read("def f(df):\n    return df['x'] / df['y'].clip(1)") == {"x", "y"}


def test_a_store_error_in_a_503_detail_is_one_line_without_key_bytes() -> None:
    from serving.online import _brief

    key = b"\x01\x00\x00\x00\x02\x00account_id'\"\\x" + b"A0001"
    # How redis-py words a failed cluster pipeline: the command, its raw arguments quoted.
    error = RuntimeError(
        f"Command # 1 (HMGET {key!r} {b'_ts:v'!r}) of pipeline caused error: "
        "The cluster is down\nTraceback ..."
    )
    brief = _brief(error)
    assert (
        brief == "Command # 1 (HMGET b'...' b'...') of pipeline caused error: The cluster is down"
    )
    assert _brief(RuntimeError("")) == "" and len(_brief(RuntimeError("x" * 1000))) == 300


def test_a_redis_cluster_that_lost_a_node_reads_as_unreachable_to_the_cli() -> None:
    from redis.exceptions import ClusterDownError, SlotNotCoveredError

    from collectwise.errors import backend_down

    for exc in (ClusterDownError("The cluster is down"), SlotNotCoveredError("slot 42")):
        down = backend_down(exc)
        assert down is not None and "the online store (Redis) is unreachable" in str(down)


def test_a_rollback_reinstates_the_retired_champion_without_a_reload(watcher: Any) -> None:
    w, fake, _ = watcher
    w.refresh()
    previous = w.current.champion
    fake.aliases["champion"] = 2
    w.refresh()
    fake.aliases["champion"] = 1  # the rollback
    assert w.refresh()
    assert w.current.champion is previous  # the same object: nothing loaded, nothing warmed
    assert fake.loads == [1, 2]


def test_a_retired_champion_that_no_longer_passes_the_check_loads_afresh(watcher: Any) -> None:
    w, fake, problems = watcher
    w.refresh()
    fake.aliases["champion"] = 2
    w.refresh()
    w._retired[1].loaded.model.fingerprint = "bad"  # the definitions moved since it served
    fake.aliases["champion"] = 1
    w.refresh()
    assert fake.loads == [1, 2, 1] and w.current.champion.version == 1 and not problems


def test_only_the_last_retired_champions_stay_loaded(watcher: Any) -> None:
    w, fake, _ = watcher
    for version in (1, 2, 3, 4):
        fake.aliases["champion"] = version
        w.refresh()
    fake.aliases["champion"] = 1  # retired longest ago: no longer kept
    w.refresh()
    assert fake.loads == [1, 2, 3, 4, 1]
