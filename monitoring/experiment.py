"""Champion / challenger experiments judged on matured outcomes.

In split mode (COLLECTWISE_SERVING__CHALLENGER_MODE=split) the scorer answers a stable,
hash-chosen share of accounts with the challenger and logs, per scored account, which arm
answered (`model_alias`, `model_version`) and the challenger's score beside the champion's
(`challenger_version`, `challenger_probability`). Once outcomes mature (monitoring.performance)
this module reports, per arm and overall: ROC AUC with a DeLong interval, Brier, expected vs
observed default, expected cost and collection success by band; then the challenger's AUC
minus the champion's with its interval and the outcomes still needed to detect the
configured minimum difference.

Intervals treat each account as one cluster (Obuchowski's clustered DeLong): an account
scored on several monthly snapshots is not several independent accounts. The headline
difference is paired when the champion's arm carries the challenger's scores
(both models ranked the same accounts, so their correlation is kept and far fewer outcomes
are needed); otherwise it is the unpaired difference between the arms. Both are reported.
The promotion rule (`verdict`): the challenger is better when the lower end of that
interval is above 0.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss

from collectwise.errors import InvalidInputError
from monitoring import experiment_stats as stats
from monitoring.job_result import JobResult
from monitoring.performance import LABEL, MATURED, band_calibration
from monitoring.served import stamp
from training.evaluate import DEFAULT_COSTS, expected_cost

if TYPE_CHECKING:
    from collectwise.settings import MonitoringSettings, Settings
    from monitoring.job_inputs import Window
    from training.registry import ModelMetadata

log = logging.getLogger(__name__)

JOB = "experiment"
CHAMPION, CHALLENGER = "champion", "challenger"
ARMS = (CHAMPION, CHALLENGER)
REPORT_FILE = "experiment.json"


class ExperimentInputError(InvalidInputError, ValueError):
    """No experiment to judge (no matured outcome, one arm only); the message says why."""


@dataclass(frozen=True)
class ExperimentConfig:
    alpha: float = 0.05
    power: float = 0.8
    min_auc_difference: float = 0.02
    costs: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_COSTS))

    @classmethod
    def from_settings(cls, job: MonitoringSettings) -> ExperimentConfig:
        return cls(
            alpha=job.experiment_alpha,
            power=job.experiment_power,
            min_auc_difference=job.experiment_min_auc_difference,
            costs={str(k): v for k, v in job.experiment_costs.items()},
        )


# --------------------------------------------------------------------------- arms


def arm_versions(served: pd.DataFrame) -> dict[str, int]:
    """The version that answered for each arm in the newest row of that arm."""
    versions: dict[str, int] = {}
    for arm in ARMS:
        rows = served[served["model_alias"] == arm]
        if not rows.empty:
            newest = rows.sort_values("scored_at", kind="stable").iloc[-1]
            versions[arm] = int(newest["model_version"])
    return versions


def experiment_rows(served: pd.DataFrame, versions: Mapping[str, int]) -> pd.DataFrame:
    """The rows each arm's version answered, with `arm`; other versions' rows are another
    experiment (before a promotion, say) and are left out."""
    keep = []
    for arm, version in versions.items():
        rows = served[(served["model_alias"] == arm) & (served["model_version"] == version)]
        keep.append(rows.assign(arm=arm))
    if not keep:
        return served.iloc[0:0].assign(arm=pd.Series(dtype=str))
    return pd.concat(keep, ignore_index=True)


def _one_arm_message(what: str, counts: Mapping[str, int], versions: Mapping[str, int]) -> str:
    return (
        f"{what} by arm {dict(counts)} (versions {dict(versions)}): an experiment "
        "needs matured outcomes in both arms; serve with "
        "COLLECTWISE_SERVING__CHALLENGER_MODE=split and a challenger, and wait for outcomes"
    )


def matured_arms(joined: pd.DataFrame, versions: Mapping[str, int]) -> pd.DataFrame:
    """Matured rows of both arms; raises ExperimentInputError when an arm has none."""
    matured = joined[joined["outcome"] == MATURED]
    if matured.empty:
        status = joined["outcome"].value_counts().to_dict() if "outcome" in joined else {}
        raise ExperimentInputError(
            f"no matured outcome among {len(joined)} scored account snapshots ({status}): "
            "labels mature 30 days + grace after scoring; choose an earlier --end"
        )
    counts = {str(k): int(v) for k, v in matured["arm"].value_counts().items()}
    if any(counts.get(arm, 0) == 0 for arm in ARMS):
        raise ExperimentInputError(_one_arm_message("matured outcomes", counts, versions))
    return matured


# --------------------------------------------------------------------------- figures


def _estimate(
    y: np.ndarray, p: np.ndarray, alpha: float, accounts: np.ndarray
) -> stats.AucEstimate | None:
    try:
        return stats.auc_interval(y, p, alpha, clusters=accounts)
    except stats.NotEstimableError as exc:
        log.warning("AUC not estimable: %s", exc)
        return None


def band_figures(rows: pd.DataFrame, costs: Mapping[str, float]) -> list[dict[str, Any]]:
    """Per served band: expected vs observed default, collection success, expected cost."""
    figures = band_calibration(rows)
    for figure in figures:
        group = rows[rows["band"] == figure["band"]]
        flagged = group["decision"].fillna(False).to_numpy(dtype=bool)
        figure["expected_cost"] = expected_cost(group[LABEL].to_numpy(dtype=int), flagged, costs)
    return figures


def arm_figures(rows: pd.DataFrame, config: ExperimentConfig) -> dict[str, Any]:
    """One arm's (or all rows') discrimination, calibration, cost and collection success."""
    y = rows[LABEL].to_numpy(dtype=int)
    p = rows["probability"].to_numpy(dtype=float)
    flagged = rows["decision"].fillna(False).to_numpy(dtype=bool)
    estimate = _estimate(y, p, config.alpha, rows["account_id"].to_numpy())
    versions = sorted({int(v) for v in rows["model_version"].dropna()})
    return {
        "versions": versions,
        "n": len(rows),
        "defaults": int(y.sum()),
        "auc": None if estimate is None else estimate.to_dict(),
        "brier": float(brier_score_loss(y, p, labels=[0, 1])),
        "mean_predicted": float(p.mean()),
        "observed_default_rate": float(y.mean()),
        "collection_success_rate": float(1.0 - y.mean()),
        "expected_cost": expected_cost(y, flagged, config.costs),
        "bands": band_figures(rows, config.costs),
    }


def paired_rows(matured: pd.DataFrame, challenger_version: int) -> pd.DataFrame:
    """Champion-arm rows that also carry this challenger's score: both models, same accounts."""
    if "challenger_probability" not in matured.columns:
        return matured.iloc[0:0]
    mask = (
        (matured["arm"] == CHAMPION)
        & (matured["challenger_version"] == challenger_version)
        & matured["challenger_probability"].notna()
    )
    return matured[mask]


def differences(
    matured: pd.DataFrame, arms: Mapping[str, dict[str, Any]], challenger_version: int, alpha: float
) -> dict[str, dict[str, Any] | None]:
    """The unpaired difference between arms and, when logged, the paired one."""
    estimates = {a: arms[a]["auc"] for a in ARMS}
    unpaired = None
    if all(estimates.values()):
        champion, challenger = (stats.AucEstimate(**estimates[a]) for a in ARMS)
        unpaired = stats.unpaired_difference(champion, challenger, alpha).to_dict()
    paired = None
    both = paired_rows(matured, challenger_version)
    if both[LABEL].nunique() == 2:
        paired = stats.paired_difference(
            both[LABEL].to_numpy(dtype=int),
            both["probability"].to_numpy(dtype=float),
            both["challenger_probability"].to_numpy(dtype=float),
            alpha,
            clusters=both["account_id"].to_numpy(),
        ).to_dict()
    return {"paired": paired, "unpaired": unpaired}


def verdict(difference: Mapping[str, Any] | None, alpha: float) -> dict[str, Any]:
    """better / worse / undecided: the (1 - alpha) interval of challenger - champion AUC."""
    if difference is None:
        return {"result": "undecided", "rule": "no AUC difference could be estimated"}
    rule = f"challenger better when the {1 - alpha:.0%} interval of its AUC gain is above 0"
    if difference["se"] <= 0:
        # No spread (a single default, say): an interval of width 0 proves nothing.
        return {"result": "undecided", "rule": f"{rule}; no spread to judge by yet"}
    if difference["low"] > 0:
        return {"result": "better", "rule": rule}
    if difference["high"] < 0:
        return {"result": "worse", "rule": rule}
    return {"result": "undecided", "rule": rule}


def evaluate_experiment(
    joined: pd.DataFrame, versions: Mapping[str, int], config: ExperimentConfig
) -> dict[str, Any]:
    """Every figure of the experiment; raises ExperimentInputError without two arms."""
    matured = matured_arms(joined, versions)
    arms = {arm: arm_figures(matured[matured["arm"] == arm], config) for arm in ARMS}
    diffs = differences(matured, arms, versions[CHALLENGER], config.alpha)
    headline = diffs["paired"] or diffs["unpaired"]
    needed = None
    if headline is not None:
        needed = stats.outcomes_needed(
            stats.AucDifference(**headline), config.min_auc_difference, config.alpha, config.power
        )
    counts = joined["outcome"].value_counts().to_dict()
    return {
        "versions": dict(versions),
        "arms": arms,
        "overall": arm_figures(matured, config),
        "difference": {**diffs, "headline": "paired" if diffs["paired"] else "unpaired"},
        "verdict": verdict(headline, config.alpha),
        "sample_size": {
            "min_auc_difference": config.min_auc_difference,
            "alpha": config.alpha,
            "power": config.power,
            **(needed or {"required": None, "more": None}),
        },
        "outcomes": {str(k): int(v) for k, v in counts.items()},
    }


def headline_difference(report: Mapping[str, Any]) -> dict[str, Any] | None:
    diff = report["difference"]
    chosen: dict[str, Any] | None = diff[diff["headline"]]
    return chosen


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ExperimentInputs:
    joined: pd.DataFrame
    versions: dict[str, int]
    span: Window


def gather(
    settings: Settings,
    span_text: str,
    end: str | None,
    served_dir: Path | None = None,
    features_dir: Path | None = None,
    versions: Mapping[str, int | None] | None = None,
) -> ExperimentInputs:
    """Both arms' served rows in the window joined to their outcomes. The window ends, by
    default, at the newest score whose outcome is final; arm versions default to the newest
    logged ones."""
    from monitoring.job_inputs import served_rows, window  # noqa: PLC0415
    from monitoring.performance import Maturity, attach_outcomes, read_outcome_inputs  # noqa: PLC0415

    maturity = Maturity()
    labels, snapshots, labels_as_of = read_outcome_inputs(
        features_dir or settings.paths.features_dir
    )
    span = window(span_text, end, maturity.latest_matured_score(labels_as_of))
    served = served_rows(served_dir or settings.paths.served_dir, span.start, span.stop)
    chosen = arm_versions(served) | {a: v for a, v in (versions or {}).items() if v is not None}
    if any(arm not in chosen for arm in ARMS):
        logged = {str(k): int(v) for k, v in served["model_alias"].value_counts().items()}
        raise ExperimentInputError(_one_arm_message("served rows", logged, chosen))
    rows = experiment_rows(served, chosen)
    joined = attach_outcomes(rows, labels, snapshots, labels_as_of, maturity)
    log.info("experiment %s: outcomes %s", chosen, joined["outcome"].value_counts().to_dict())
    return ExperimentInputs(joined, chosen, span)


# --------------------------------------------------------------------------- output


def experiment_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """Flat metrics: experiment.<arm>.auc, .n, .brier, .expected_cost; the difference."""
    metrics: dict[str, float] = {}
    for arm, figures in report["arms"].items():
        prefix = f"experiment.{arm}"
        metrics[f"{prefix}.n"] = float(figures["n"])
        metrics[f"{prefix}.brier"] = figures["brier"]
        metrics[f"{prefix}.expected_cost"] = figures["expected_cost"]
        metrics[f"{prefix}.collection_success_rate"] = figures["collection_success_rate"]
        if figures["auc"]:
            metrics[f"{prefix}.auc"] = figures["auc"]["auc"]
    diff = headline_difference(report)
    if diff:
        metrics.update({f"experiment.auc_difference.{k}": diff[k] for k in ("difference", "low")})
    more = report["sample_size"].get("more")
    if more is not None:
        metrics["experiment.outcomes_still_needed"] = float(more)
    return metrics


def write_report(report: Mapping[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REPORT_FILE
    path.write_text(json.dumps(report, indent=2, default=str))
    return path


def latest_report(reports_dir: Path) -> dict[str, Any] | None:
    """The most recently written experiment report under reports_dir/experiment/."""
    found = list(Path(reports_dir).glob(f"{JOB}/*/{REPORT_FILE}"))
    if not found:
        return None
    # Directories are named by window end, not run time: a rerun on an older window is newer.
    newest = max(found, key=lambda path: path.stat().st_mtime)
    loaded: dict[str, Any] = json.loads(newest.read_text())
    return loaded


def experiment_job(
    joined: pd.DataFrame,
    versions: Mapping[str, int],
    config: ExperimentConfig,
    *,
    window_start: datetime | None,
    window_end: datetime,
    reports_dir: Path,
    labels: dict[str, str] | None = None,
) -> tuple[JobResult, dict[str, Any]]:
    """evaluate_experiment + its JSON report under reports_dir/experiment/<end stamp>/."""
    labels = {**(labels or {}), **{f"{a}_version": str(v) for a, v in versions.items()}}
    report = {
        "labels": labels,
        "window": {"start": window_start, "end": window_end},
        **evaluate_experiment(joined, versions, config),
    }
    path = write_report(report, Path(reports_dir) / JOB / stamp(window_end))
    result = JobResult(
        job=JOB,
        window_start=window_start,
        window_end=window_end,
        metrics=experiment_metrics(report),
        labels=labels,
        reports={"json": path},
        details={"outcomes": report["outcomes"], "verdict": report["verdict"]["result"]},
        rows=int(report["overall"]["n"]),
    )
    return result, json.loads(json.dumps(report, default=str))


# --------------------------------------------------------------------------- terminal


def _auc_text(auc: Mapping[str, Any] | None) -> str:
    return "n/a" if not auc else f"{auc['auc']:.4f} [{auc['low']:.4f}, {auc['high']:.4f}]"


def _diff_text(diff: Mapping[str, Any] | None) -> str:
    if not diff:
        return "n/a"
    return (
        f"{diff['difference']:+.4f} [{diff['low']:+.4f}, {diff['high']:+.4f}] "
        f"p={diff['p_value']:.4f} n={diff['n']}"
    )


def render_table(report: Mapping[str, Any]) -> str:
    """The report as a fixed-width table for the terminal."""
    lines = [
        f"{'arm':<11}{'versions':<10}{'n':>7}{'defaults':>9}  {'AUC [interval]':<26}"
        f"{'Brier':>7}{'cost':>7}{'paid':>7}"
    ]
    rows = [*report["arms"].items(), ("overall", report["overall"])]
    for arm, fig in rows:
        versions = ",".join(f"v{v}" for v in fig["versions"])
        lines.append(
            f"{arm:<11}{versions:<10}{fig['n']:>7}{fig['defaults']:>9}  "
            f"{_auc_text(fig['auc']):<26}{fig['brier']:>7.4f}{fig['expected_cost']:>7.3f}"
            f"{fig['collection_success_rate']:>7.3f}"
        )
    lines.append("")
    lines.append(
        f"{'arm':<11}{'band':<8}{'n':>7}{'predicted':>10}{'observed':>10}{'paid':>7}{'cost':>7}"
    )
    for arm, fig in report["arms"].items():
        for band in fig["bands"]:
            lines.append(
                f"{arm:<11}{band['band']:<8}{band['n']:>7}{band['mean_predicted']:>10.4f}"
                f"{band['observed_default_rate']:>10.4f}{band['collection_success_rate']:>7.3f}"
                f"{band['expected_cost']:>7.3f}"
            )
    diff, size, said = report["difference"], report["sample_size"], report["verdict"]
    lines += [
        "",
        f"AUC challenger - champion, paired:   {_diff_text(diff['paired'])}",
        f"AUC challenger - champion, unpaired: {_diff_text(diff['unpaired'])}",
        f"verdict ({diff['headline']}): {said['result']} - {said['rule']}",
        f"outcomes to detect {size['min_auc_difference']} at alpha {size['alpha']}, power "
        f"{size['power']}: {_or_never(size['required'])} required, "
        f"{_or_never(size['more'])} more to mature",
    ]
    return "\n".join(lines)


def _or_never(count: int | None) -> str:
    # None: both models ranked the accounts identically, so no sample would tell them apart.
    return "no number of" if count is None else str(count)


def run_experiment(
    settings: Settings,
    span_text: str,
    end: str | None,
    versions: Mapping[str, int | None] | None = None,
    served_dir: Path | None = None,
    features_dir: Path | None = None,
    reports_dir: Path | None = None,
) -> tuple[JobResult, dict[str, Any], str]:
    """gather + experiment_job with the settings' configuration: the job result, the report
    (JSON-ready) and its terminal table."""
    found = gather(settings, span_text, end, served_dir, features_dir, versions)
    result, report = experiment_job(
        found.joined,
        found.versions,
        ExperimentConfig.from_settings(settings.monitoring),
        window_start=found.span.start,
        window_end=found.span.stop,
        reports_dir=reports_dir or settings.paths.monitoring_reports_dir,
        labels={"window": span_text, "source": "served"},
    )
    return result, report, render_table(report)


# --------------------------------------------------------------------------- promotion


def promotion_decision(report: Mapping[str, Any]) -> tuple[bool, str]:
    """(promote?, why): promote only on the verdict "better" (interval above 0)."""
    diff = headline_difference(report)
    said = report["verdict"]
    versions = report["versions"]
    head = (
        f"experiment challenger v{versions[CHALLENGER]} vs champion v{versions[CHAMPION]} on "
        f"{report['overall']['n']} matured outcomes"
    )
    if diff is None:
        return False, f"{head}: AUC difference not estimable ({said['rule']})"
    gain = (
        f"AUC gain {diff['difference']:+.4f} [{diff['low']:+.4f}, {diff['high']:+.4f}] "
        f"({report['difference']['headline']})"
    )
    return said["result"] == "better", f"{head}: {gain}, {said['result']}; rule: {said['rule']}"


def evidence_tags(report: Mapping[str, Any]) -> dict[str, str]:
    """The experiment's summary as version tags (the whole report goes in an artifact)."""
    diff = headline_difference(report) or {}
    tags = {
        "verdict": str(report["verdict"]["result"]),
        "champion_version": str(report["versions"][CHAMPION]),
        "n_matured": str(report["overall"]["n"]),
        "window_end": str(report["window"]["end"]),
        "comparison": str(report["difference"]["headline"]),
    }
    for key in ("difference", "low", "high", "p_value"):
        if key in diff:
            tags[f"auc_{key}"] = f"{diff[key]:.6f}"
    return tags


def experiment_evidence(
    settings: Settings,
    span_text: str,
    end: str | None = None,
    served_dir: Path | None = None,
    features_dir: Path | None = None,
    reports_dir: Path | None = None,
) -> Callable[[ModelMetadata, ModelMetadata | None], str]:
    """The promotion gate's evidence from the experiment between the two versions; the
    summary is recorded on the candidate whether it passes or not."""
    from training.registry import PromotionRefused  # noqa: PLC0415
    from training.registry.evidence import record_evidence  # noqa: PLC0415

    def judge(candidate: ModelMetadata, champion: ModelMetadata | None) -> str:
        if champion is None:
            raise PromotionRefused("no champion: an experiment needs one to compare against")
        versions = {CHAMPION: champion.version, CHALLENGER: candidate.version}
        _, report, table = run_experiment(
            settings, span_text, end, versions, served_dir, features_dir, reports_dir
        )
        log.info("experiment evidence:\n%s", table)
        passed, reason = promotion_decision(report)
        record_evidence(candidate.version, JOB, evidence_tags(report), report)
        if not passed:
            raise PromotionRefused(f"promotion refused: {reason}")
        return reason

    return judge


# --------------------------------------------------------------------------- console


def console_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per arm (and overall) of a report, for the console's grid."""
    rows = []
    for arm, fig in [*report["arms"].items(), ("overall", report["overall"])]:
        auc = fig["auc"] or {}
        rows.append(
            {
                "arm": arm,
                "versions": ", ".join(f"v{v}" for v in fig["versions"]),
                "n": fig["n"],
                "defaults": fig["defaults"],
                "auc": _round(auc.get("auc")),
                "auc_low": _round(auc.get("low")),
                "auc_high": _round(auc.get("high")),
                "brier": _round(fig["brier"]),
                "expected_cost": _round(fig["expected_cost"]),
                "collection_success_rate": _round(fig["collection_success_rate"]),
            }
        )
    return rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def console_summary(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The verdict, the AUC difference and the outcomes still needed, as label / text."""
    size = report["sample_size"]
    return [
        ("verdict", f"{report['verdict']['result']} ({report['verdict']['rule']})"),
        ("AUC difference", _diff_text(headline_difference(report))),
        ("comparison", str(report["difference"]["headline"])),
        ("outcomes still needed", f"{_or_never(size['more'])} (to detect "
                                  f"{size['min_auc_difference']} with power {size['power']})"),
        ("window", f"{report['window']['start']} to {report['window']['end']}"),
    ]  # fmt: skip
