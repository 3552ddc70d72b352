"""The pure functions behind the console's callbacks."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from admin_app.logic import audit, fairness, health, monitoring
from admin_app.logic import models as models_logic
from admin_app.logic.explain import (
    by_source,
    dependence_frame,
    importance_from_shap,
    short_name,
    waterfall_figure,
    waterfall_steps,
)
from admin_app.logic.files import list_reports, safe_path
from admin_app.logic.roles import can, check_password, check_role, check_username
from admin_app.logic.upload_checks import (
    UploadError,
    account_id_problems,
    account_ids,
    chunks,
    decode_upload,
    read_frame,
    summarise,
    upload_kind,
)
from admin_app.logic.users import check_change
from training.registry import ModelMetadata, PromotionRefused, RegistryError

pytestmark = pytest.mark.unit


# --------------------------------------------------------------------------- roles


@pytest.mark.parametrize(
    ("role", "action", "allowed"),
    [
        ("viewer", "read", True),
        ("viewer", "ack_alert", False),
        ("operator", "ack_alert", True),
        ("operator", "batch_score", True),
        ("operator", "promote", False),
        ("admin", "promote", True),
        ("admin", "edit_users", True),
        (None, "read", False),
        ("root", "read", False),
        ("admin", "format_disk", False),
    ],
)
def test_roles_allow_what_the_policy_says(role: str | None, action: str, allowed: bool) -> None:
    assert can(role, action) is allowed


def test_names_passwords_and_roles_are_checked() -> None:
    assert check_username("  ops.lead@bank ") == "ops.lead@bank"
    for bad in ("", "a", "has space", "-dash-first", "x" * 65):
        with pytest.raises(ValueError, match="user name"):
            check_username(bad)
    with pytest.raises(ValueError, match="at least 10"):
        check_password("short")
    with pytest.raises(ValueError, match="user name"):
        check_password("alice-the-admin", "Alice-The-Admin")
    with pytest.raises(ValueError, match="role"):
        check_role("superuser")


# --------------------------------------------------------------------------- batch uploads


def data_url(text: str) -> str:
    return "data:text/csv;base64," + base64.b64encode(text.encode()).decode()


def test_upload_kind_and_decoding() -> None:
    assert upload_kind("Scores.CSV") == "csv"
    assert upload_kind("x.parquet") == "parquet"
    with pytest.raises(UploadError, match=r"\.csv or \.parquet"):
        upload_kind("accounts.xlsx")
    assert decode_upload(data_url("account_id\nA1\n"), 1024) == b"account_id\nA1\n"
    for bad, why in ((None, "empty"), ("data:text/csv,abc", "base64"), (data_url("  "), "empty")):
        with pytest.raises(UploadError, match=why):
            decode_upload(bad, 1024)
    with pytest.raises(UploadError, match="larger than"):
        decode_upload(data_url("x" * 4096), 1024)


def test_problems_name_the_column_and_the_lines() -> None:
    wrong = read_frame(b"acct,amount\nA1,3\n", "csv")
    (problem,) = account_id_problems(wrong, "csv", 100)
    assert "no column 'account_id'" in problem and "acct, amount" in problem

    frame = read_frame(b'account_id\nA1\n""\nbad id!\nA2\n"   "\n', "csv")
    problems = account_id_problems(frame, "csv", 100)
    assert any("empty on lines 3, 6" in p for p in problems)
    assert any("lines 4 " in p and "'bad id!'" in p for p in problems)
    assert account_id_problems(frame, "csv", 2)[0] == "5 rows: at most 2 per upload"
    assert account_id_problems(read_frame(b"account_id\n", "csv"), "csv", 10) == [
        "the file has a header but no rows"
    ]


def test_parquet_rows_count_from_one_and_good_files_pass() -> None:
    buffer = io.BytesIO()
    pd.DataFrame({"account_id": ["A1", None, "A2"]}).to_parquet(buffer)
    frame = read_frame(buffer.getvalue(), "parquet")
    assert account_id_problems(frame, "parquet", 10) == ["column 'account_id' is empty on rows 2"]
    good = read_frame(b"account_id,other\nA1,x\nA2,y\nA1,z\n", "csv")
    assert account_id_problems(good, "csv", 10) == []
    assert account_ids(good) == ["A1", "A2"]
    with pytest.raises(UploadError, match="cannot read"):
        read_frame(b"not parquet at all", "parquet")


def test_chunks_and_summary() -> None:
    assert [list(c) for c in chunks(["a", "b", "c"], 2)] == [["a", "b"], ["c"]]
    with pytest.raises(ValueError):
        list(chunks(["a"], 0))
    scores = pd.DataFrame(
        {
            "band": ["high", "low", "low", "unknown"],
            "status": ["scored", "scored", "scored", "no features for this account"],
        }
    )
    assert (
        summarise(scores)
        == "3 of 4 accounts scored: 1 high, 2 low; 1 without features (not scored)"
    )


# --------------------------------------------------------------------------- models


def meta(version: int, aliases: list[str], auc: float | None = 0.8, **tags: str) -> ModelMetadata:
    return ModelMetadata(
        name="collection-risk", version=version, aliases=aliases, status="registered",
        run_id="r", created=datetime(2026, 1, version, tzinfo=UTC),
        feature_service="collection_risk_v1", definitions_fingerprint="f" * 40,
        data_fingerprint="d", dvc_data_hash="h" * 32, git_commit="c" * 40,
        test_set_fingerprint="t", threshold=0.4, bands={"low_max": 0.2, "medium_max": 0.5},
        metrics={} if auc is None else {"test_roc_auc": auc, "importance.x": 0.1},
        params={}, feature_columns=["x"], calibration="isotonic", tags=dict(tags),
    )  # fmt: skip


def test_version_rows_and_metrics_side_by_side() -> None:
    metas = [meta(2, ["challenger"], 0.85), meta(1, ["champion"], None)]
    rows = models_logic.version_rows(metas)
    assert rows[0]["version"] == 2 and rows[0]["test_roc_auc"] == 0.85
    assert rows[1]["test_roc_auc"] is None and rows[0]["fingerprint"] == "f" * 12
    side = models_logic.metrics_side_by_side(metas)
    assert side[0] == {"metric": "test_roc_auc", "v2": 0.85, "v1": None}  # headline first
    assert models_logic.promotable(metas) == [2]
    items = dict(models_logic.lineage(meta(3, [], git_dirty="true")))
    assert items["git commit"].endswith("(uncommitted changes)")


def test_promote_reports_the_gate_and_needs_a_reason() -> None:
    calls: list[tuple[Any, ...]] = []

    def accept(version: int, **kw: Any) -> Any:
        calls.append((version, kw))
        return SimpleNamespace(version=version, promotion_reason="gain +0.05")

    def refuse(version: int, **kw: Any) -> Any:
        raise PromotionRefused("promotion refused: gain +0.001, margin 0.005")

    kw = {"errors": (RegistryError,), "refusals": (PromotionRefused,)}
    done = models_logic.promote(accept, 2, "alice", "better AUC", False, **kw)
    assert done.ok and "v2 is now the champion" in done.message and "gain +0.05" in done.message
    assert calls == [(2, {"force": False, "who": "alice", "why": "better AUC"})]
    refused = models_logic.promote(refuse, 2, "alice", "better AUC", False, **kw)
    assert refused.outcome == "refused" and "margin 0.005" in refused.message
    assert refused.level == "warning"
    no_reason = models_logic.promote(accept, 2, "alice", "  ", False, **kw)
    assert no_reason.outcome == "error" and "say why" in no_reason.message
    assert models_logic.promote(accept, None, "alice", "why not", False, **kw).outcome == "error"


def test_rollback_turns_registry_errors_into_messages() -> None:
    def no_previous(who: str, why: str) -> Any:
        raise RegistryError("collection-risk has no previous-champion to roll back to")

    done = models_logic.rollback(no_previous, "alice", "bad drift", errors=(RegistryError,))
    assert done.outcome == "error" and "previous-champion" in done.message

    def back(who: str, why: str) -> Any:
        return SimpleNamespace(version=1)

    ok = models_logic.rollback(back, "alice", "bad drift", errors=(RegistryError,))
    assert ok.ok and "v1" in ok.message


def test_history_newest_first() -> None:
    history = [{"action": "promote", "version": 1}, {"action": "rollback", "version": 2}]
    assert [r["action"] for r in models_logic.history_rows(history)] == ["rollback", "promote"]


# --------------------------------------------------------------------------- monitoring


def test_rule_form_parses_and_names_the_bad_field() -> None:
    form = {"name": " drift ", "metric": "drift.share_drifted", "comparison": ">",
            "threshold": "0.3", "window": "", "severity": "warning", "enabled": True}  # fmt: skip
    parsed = monitoring.parse_rule_form(form)
    assert parsed["name"] == "drift" and parsed["threshold"] == 0.3 and parsed["window"] is None
    with pytest.raises(ValueError, match="'threshold'"):
        monitoring.parse_rule_form({**form, "threshold": "lots"})
    with pytest.raises(ValueError, match="'name'"):
        monitoring.parse_rule_form({**form, "name": " "})


def test_alert_action_outcomes() -> None:
    alert = SimpleNamespace(id=3, rule_name="score drift")
    done = monitoring.alert_action(lambda i, w, n: alert, "3", "olga", " ", "acknowledged", ())
    assert done.ok and done.message == "alert 3 (score drift) acknowledged by olga"
    assert monitoring.alert_action(lambda *a: alert, None, "olga", None, "x", ()).outcome == "error"

    def resolved(*_: Any) -> Any:
        raise LookupError("alert 3 is resolved: cannot acknowledge it")

    refused = monitoring.alert_action(resolved, 3, "olga", None, "x", (LookupError,))
    assert refused.outcome == "refused" and "cannot acknowledge" in refused.message


def test_records_and_trends() -> None:
    frame = pd.DataFrame(
        {"at": [datetime(2026, 1, 1, tzinfo=UTC)], "x": [float("nan")], "y": [1.23456]}
    )
    assert monitoring.records(frame) == [{"at": "2026-01-01 00:00:00", "x": None, "y": 1.235}]
    series = {"drift.score_psi": pd.DataFrame({"window_end": [1, 2], "value": [0.1, 0.3]})}
    figure = monitoring.trend_figure(series, "Drift", {"drift.score_psi": 0.2})
    assert len(figure.data) == 1 and "no points" not in figure.layout.title.text
    assert "no points" in monitoring.trend_figure({}, "Drift").layout.title.text
    rules = [SimpleNamespace(metric="drift.score_psi", threshold=0.2, enabled=True),
             SimpleNamespace(metric="drift.*", threshold=1.0, enabled=True)]  # fmt: skip
    assert monitoring.rule_thresholds(rules, ["drift.score_psi"]) == {"drift.score_psi": 0.2}


# --------------------------------------------------------------------------- report files


def test_safe_path_stays_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    (root / "drift" / "s1").mkdir(parents=True)
    (root / "drift" / "s1" / "drift.html").write_text("<html></html>")
    (tmp_path / "secret").write_text("key")
    (root / "link").symlink_to(tmp_path / "secret")
    assert safe_path(root, "drift/s1/drift.html") == (root / "drift/s1/drift.html").resolve()
    for bad in ("../secret", "drift/../../secret", str(tmp_path / "secret"), "link", "drift",
                "", "missing.html", "a\x00b"):  # fmt: skip
        assert safe_path(root, bad) is None, bad
    listed = list_reports(root)
    assert [(r["job"], r["stamp"], r["path"]) for r in listed] == [
        ("drift", "s1", "drift/s1/drift.html")
    ]
    assert list_reports(tmp_path / "nowhere") == []


# --------------------------------------------------------------------------- explanations


def test_contributions_roll_up_to_features_and_the_waterfall_adds_up() -> None:
    raw = pd.Series({"hist_0": 0.2, "hist_1": 0.1, "ch_card": -0.3, "ch_cash": 0.0, "v": 0.05})
    sources = {"hist_0": "view__hist", "hist_1": "view__hist", "ch_card": "view__ch",
               "ch_cash": "view__ch", "v": "view__v"}  # fmt: skip
    rolled = by_source(raw, sources)
    assert rolled.to_dict() == pytest.approx({"view__hist": 0.3, "view__ch": -0.3, "view__v": 0.05})
    steps = waterfall_steps(rolled, top=2)
    assert list(steps.index) == ["view__hist", "view__ch", "1 other features"]
    figure = waterfall_figure(rolled, base_value=-1.0, probability=0.3, top=2)
    assert list(figure.data[0].measure) == ["absolute", "relative", "relative", "relative", "total"]
    assert short_name("account_payment_velocity__payment_velocity") == "payment velocity"


def test_importance_and_dependence() -> None:
    shap_values = pd.DataFrame({"a": [0.1, -0.3], "b": [0.0, 0.05]})
    assert list(importance_from_shap(shap_values).index) == ["a", "b"]
    x = pd.DataFrame({"a": [1.0, float("nan")], "b": [2.0, 3.0]})
    assert dependence_frame(x, shap_values, "a").to_dict("list") == {"value": [1.0], "shap": [0.1]}


# --------------------------------------------------------------------------- fairness


FAIRNESS = {
    "threshold": 0.4,
    "min_ratio": 0.8,
    "min_group_size": 30,
    "attributes": {
        "sex": {
            "groups": {
                "female": {"count": 100, "defaults": 20, "selection_rate": 0.2},
                "male": {"count": 100, "defaults": 30, "selection_rate": 0.3},
                "unknown": {"count": 5, "defaults": 1, "selection_rate": 0.9},
            },
            "disparate_impact": 0.6667,
            "passes_four_fifths": False,
        },
        "age_band": {"groups": {}, "disparate_impact": None, "passes_four_fifths": None},
    },
}


def test_fairness_rows_judge_groups_against_the_highest_eligible_rate() -> None:
    summary = {r["attribute"]: r for r in fairness.summary_rows(FAIRNESS)}
    assert summary["sex"]["verdict"] == "fails"
    assert summary["age_band"]["verdict"] == "too few accounts to compare"
    groups = {r["group"]: r for r in fairness.group_rows(FAIRNESS)}
    assert groups["female"]["ratio_to_highest"] == pytest.approx(0.6667, abs=1e-4)
    assert groups["female"]["four_fifths"] == "below 80%"
    assert groups["male"]["four_fifths"] == "ok"
    assert groups["unknown"]["four_fifths"] == "too small to judge"  # not the reference either
    figure = fairness.selection_figure(FAIRNESS, "sex")
    assert list(figure.data[0].x) == ["female", "male", "unknown"]


# --------------------------------------------------------------------------- audit, health, users


def test_audit_search_and_verification() -> None:
    rows = [{"account_id": "A1", "band": "high"}, {"account_id": "A2", "band": "low"}]
    assert audit.search(rows, "a2 LOW") == [rows[1]]
    assert audit.search(rows, "") == rows
    ok = SimpleNamespace(ok=True, rows=4)
    assert audit.verification_text(ok) == ("Hash chain verified: 4 rows intact.", "success")
    broken = SimpleNamespace(ok=False, summary=lambda: "audit chain broken at seq 3")
    assert audit.verification_text(broken) == ("audit chain broken at seq 3", "danger")


def test_health_cards_and_materialisations() -> None:
    routes = pd.DataFrame({"route": ["/v1/score"], "requests": [100.0], "p99_ms": [4.2]})
    scorer = SimpleNamespace(routes=routes, requests=100.0, error_rate=0.02)
    cards = {c.label: c for c in health.scorer_cards(scorer, None, configured=True)}
    assert cards["p99 latency"].value == "4.2 ms" and cards["error rate"].colour == "danger"
    assert health.scorer_cards(None, "refused", configured=True)[0].colour == "danger"
    assert health.scorer_cards(None, None, configured=False)[0].colour == "secondary"
    assert health.store_card(False, "timeout").value == "down: timeout"
    t1, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    rows = health.materialisation_rows([("b", []), ("a", [(t1, t2), (t1, t1)])])
    assert rows == [
        {"view": "a", "last_materialised_up_to": "2026-02-01 00:00:00", "intervals": 2},
        {"view": "b", "last_materialised_up_to": "never", "intervals": 0},
    ]


def test_user_changes_that_would_lock_everyone_out_are_refused() -> None:
    admin = SimpleNamespace(name="alice", role="admin", active=True)
    with pytest.raises(ValueError, match="last active admin"):
        check_change("bob", admin, "viewer", None, active_admins=1)
    with pytest.raises(ValueError, match="last active admin"):
        check_change("bob", admin, None, False, active_admins=1)
    with pytest.raises(ValueError, match="your own account"):
        check_change("alice", admin, None, False, active_admins=2)
    check_change("bob", admin, "viewer", None, active_admins=2)
    with pytest.raises(ValueError, match="choose a user"):
        check_change("bob", None, "viewer", None, active_admins=2)
