"""`collectwise models ...`: the model registry from the command line.

Thin shells over training.registry; the promotion gate and the audit tags live there.
"""

from __future__ import annotations

import getpass
import json
import logging
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from collectwise.shell import new_app

app = new_app(help="List, inspect, promote and roll back registered models.", no_args_is_help=True)
log = logging.getLogger("collectwise.models")

WhoOpt = Annotated[str | None, typer.Option(help="who decided (default: the OS user)")]


def _live_fingerprint() -> Callable[[str], str] | None:
    """Feature service -> the live Feast registry's definitions fingerprint, as the scorer
    computes it; None (logged) when there is no registry to read yet."""
    from feast.errors import FeastObjectNotFoundException  # noqa: PLC0415

    from collectwise.settings import get_settings  # noqa: PLC0415
    from ingestion.feast_store import open_store  # noqa: PLC0415
    from training.fingerprint import definitions_fingerprint  # noqa: PLC0415

    s = get_settings()
    try:
        store = open_store(s)
        store.list_feature_services()
    except (OSError, FeastObjectNotFoundException, ValueError) as exc:
        log.warning("no live feature registry to check against (%s): the AUC gate alone", exc)
        return None

    def live(service: str) -> str:
        try:
            return definitions_fingerprint(store, service)
        except FeastObjectNotFoundException:
            return f"(no {service} in the live registry)"

    return live


class Evidence(StrEnum):
    test = "test"
    experiment = "experiment"


def _experiment_gate(window: str) -> Callable[[Any, Any], str]:
    from collectwise.settings import get_settings  # noqa: PLC0415
    from monitoring.experiment import experiment_evidence  # noqa: PLC0415

    return experiment_evidence(get_settings(), window)


def _row(meta: Any) -> str:
    auc = f"{meta.test_auc:.4f}" if meta.test_auc is not None else "n/a"
    aliases = ",".join(meta.aliases) or "-"
    return (
        f"v{meta.version:<4} {aliases:<28} auc={auc}  {meta.created:%Y-%m-%d %H:%M}  "
        f"{meta.feature_service}  {meta.git_commit[:10]}"
    )


@app.command("list")
def list_models(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every registered version with its aliases and test AUC."""
    from training.registry import list_versions  # noqa: PLC0415

    versions = list_versions()
    if as_json:
        typer.echo(json.dumps([m.to_dict() for m in versions], indent=2, default=str))
        return
    if not versions:
        typer.echo("no registered versions yet: train and register one (make demo)")
    for meta in versions:
        typer.echo(_row(meta))


@app.command()
def show(version: Annotated[str, typer.Argument(help="a version (3, v3) or an alias")]) -> None:
    """The ModelMetadata of one version, as JSON."""
    from training.registry import show as show_version  # noqa: PLC0415

    meta = show_version(version)
    typer.echo(json.dumps(meta.to_dict(), indent=2, default=str))


@app.command()
def promote(
    version: Annotated[str | None, typer.Argument(help="default: the challenger")] = None,
    force: Annotated[bool, typer.Option(help="skip the gate (needs --why)")] = False,
    who: WhoOpt = None,
    why: Annotated[str | None, typer.Option(help="the reason, recorded on the version")] = None,
    evidence: Annotated[
        Evidence, typer.Option(help="test: test-set AUC gate; experiment: live A/B outcomes")
    ] = Evidence.test,
    experiment_window: Annotated[
        str, typer.Option(help="--evidence experiment: scores this far back, e.g. 90d")
    ] = "90d",
) -> None:
    """Make a version champion if it beats the champion by the margin in params.yaml, or,
    with --evidence experiment, if its AUC gain over the champion on matured outcomes of the
    split experiment has an interval above 0 (recorded on the version either way).

    Checked first against the live Feast registry, as the scorer checks: a version trained
    on other feature definitions is refused; one replacing a champion the scorer would
    refuse for that reason is promoted.
    """
    from training.registry import promote as promote_version  # noqa: PLC0415

    if force and not why:
        raise typer.BadParameter("a forced promotion needs --why", param_hint="--why")
    meta = promote_version(
        version,
        force=force,
        who=who or (getpass.getuser() if force else None),
        why=why,
        live_fingerprint=_live_fingerprint(),
        evidence=_experiment_gate(experiment_window) if evidence is Evidence.experiment else None,
    )
    log.info("v%s is now champion (test AUC %s)", meta.version, meta.test_auc)


@app.command()
def rollback(
    why: Annotated[str, typer.Option(help="the reason, recorded on both versions")],
    who: WhoOpt = None,
) -> None:
    """Restore the previous champion."""
    from training.registry import rollback as rollback_champion  # noqa: PLC0415

    meta = rollback_champion(who or getpass.getuser(), why)
    log.info("rolled back: v%s is champion again", meta.version)


@app.command()
def card(
    version: Annotated[str, typer.Argument(help="a version or an alias")],
    out: Annotated[Path | None, typer.Option(help="HTML file")] = None,
) -> None:
    """Write the model card of a version as HTML."""
    from training.registry import card_for_version  # noqa: PLC0415

    target = out or Path("reports") / f"model_card_{version}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    path = card_for_version(version, target)
    log.info("model card written to %s", path)


@app.command()
def report(
    version: Annotated[str, typer.Argument(help="a version (3, v3) or an alias")],
    out: Annotated[Path | None, typer.Option(help="folder for the report files")] = None,
    rebuild: Annotated[
        bool, typer.Option(help="rebuild from the version's model and --dataset, then log it")
    ] = False,
    dataset: Annotated[Path, typer.Option(help="training set directory (with --rebuild)")] = Path(
        "data/training"
    ),
    params: Annotated[Path, typer.Option(help="params.yaml with a `train` section")] = Path(
        "params.yaml"
    ),
) -> None:
    """The validation report of a version (JSON, HTML, PDF): downloaded from its run, or
    rebuilt with --rebuild (benchmarked against the other live version) and logged again."""
    from training.validation.versioned import download_validation, rebuild_validation  # noqa: PLC0415

    target = out or Path("reports") / f"validation_{version}"
    if not rebuild:
        paths = download_validation(version, target)
    elif not (dataset / "dataset.parquet").is_file():
        raise typer.BadParameter(f"no training set at {dataset}", param_hint="--dataset")
    else:
        from collectwise.train_cli import _params  # noqa: PLC0415

        paths = rebuild_validation(version, dataset, _params(params), target)
    for kind, path in sorted(paths.items()):
        log.info("validation report (%s): %s", kind, path)


@app.command()
def importance(
    top: Annotated[int, typer.Option(min=1, help="features to show")] = 10,
) -> None:
    """Global SHAP importance (mean |SHAP|) per registered version, to compare runs."""
    from training.registry import importance_history  # noqa: PLC0415

    history = importance_history()
    if history.empty:
        typer.echo("no version has logged importance yet (registered before tracking began)")
        return
    latest = history.iloc[-1].sort_values(ascending=False)
    columns = list(latest.index[:top])
    table = history[columns].T
    table.columns = [f"v{v}" for v in table.columns]
    typer.echo(table.round(4).to_string())
