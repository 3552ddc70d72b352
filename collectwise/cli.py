"""The `collectwise` console script: one command per pipeline step.

Each command is a thin shell over a pure core in another package; heavy imports (Feast,
DuckDB) happen inside the command so `collectwise --help` stays fast. Paths are arguments
with defaults from the settings, and equal the deps / outs of dvc.yaml.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from collectwise.admin_cli import app as admin_cli_app
from collectwise.alerts_cli import app as alerts_app
from collectwise.audit_cli import app as audit_app
from collectwise.backup_cli import app as backup_app
from collectwise.backup_cli import rebuild_online
from collectwise.config_cli import app as config_app
from collectwise.models_cli import app as models_app
from collectwise.monitor_cli import app as monitor_app
from collectwise.scheduler_cli import app as scheduler_app
from collectwise.serve_cli import demo_request, keys_app, serve
from collectwise.settings import get_settings
from collectwise.shell import new_app
from collectwise.train_cli import app as train_app

if TYPE_CHECKING:
    import pandas as pd

    from training.scoring_model import ScoringModel

app = new_app(
    name="collectwise",
    help="Collectwise: debt-collection risk on a Feast feature store.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
log = logging.getLogger("collectwise")
app.add_typer(models_app, name="models")
app.add_typer(train_app, name="train")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(alerts_app, name="alerts")
app.add_typer(monitor_app, name="monitor")
app.add_typer(admin_cli_app, name="admin")
app.add_typer(config_app, name="config")
app.add_typer(scheduler_app, name="scheduler")
app.add_typer(backup_app, name="backup")
app.command("rebuild-online")(rebuild_online)
app.command()(serve)
app.command()(demo_request)

PathOpt = Annotated[Path | None, typer.Option(help="defaults to the active data directory")]


def _configure_logging(level: str) -> None:
    # Plain lines (not rich's wrapped columns) so logs read the same in a terminal and in CI.
    # basicConfig leaves existing handlers (an embedding app's, pytest's) alone.
    logging.basicConfig(
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger().setLevel(level.upper())
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # Feast and ibis are chatty at INFO; their warnings still show.
    for noisy in ("feast", "ibis", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.callback()
def main_callback(
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "",
) -> None:
    _configure_logging(log_level or get_settings().log_level)


def _summary(title: str, summary: Any) -> None:
    data = asdict(summary) if is_dataclass(summary) and not isinstance(summary, type) else summary
    log.info("%s: %s", title, json.dumps(data, default=str))


@app.command()
def generate(
    accounts: Annotated[int, typer.Option(min=1, help="number of accounts")] = 20_000,
    months: Annotated[int, typer.Option(min=2, max=120, help="months of history")] = 24,
    seed: Annotated[int, typer.Option(help="random seed: same seed, same data")] = 42,
    out: PathOpt = None,
    scenario: Annotated[str, typer.Option(help="none | income_shock | channel_shift")] = "none",
    drift_months: Annotated[
        int | None,
        typer.Option(min=1, help="months the scenario covers, at most --months [default: 3]"),
    ] = None,
    default_rate: Annotated[float, typer.Option(min=0.01, max=0.99)] = 0.25,
    start: Annotated[str, typer.Option(help="first month, YYYY-MM-DD (a 1st)")] = "2024-11-01",
) -> None:
    """Write a synthetic collections dataset in the raw contract."""
    from ingestion.synthetic import (  # noqa: PLC0415
        DEFAULT_DRIFT_MONTHS,
        SyntheticConfig,
        month_start,
    )
    from ingestion.synthetic import generate as run  # noqa: PLC0415

    if scenario not in ("none", "income_shock", "channel_shift"):
        raise typer.BadParameter(f"unknown scenario '{scenario}'", param_hint="--scenario")
    config = SyntheticConfig(
        accounts=accounts,
        months=months,
        seed=seed,
        start=month_start(start),
        default_rate=default_rate,
        scenario=scenario,  # type: ignore[arg-type]
        # The default window shrinks to a short run; a window asked for is checked.
        drift_months=min(DEFAULT_DRIFT_MONTHS, months) if drift_months is None else drift_months,
    )
    _summary("generated", run(config, out or get_settings().paths.raw_dir))


@app.command()
def validate(
    raw: PathOpt = None,
    out: PathOpt = None,
    quarantine: PathOpt = None,
    reports: Annotated[Path, typer.Option(help="where the quality report goes")] = Path(
        "reports/quality"
    ),
    max_bad_share: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.05,
    memory_limit: Annotated[
        str | None,
        typer.Option(help="DuckDB's memory cap (e.g. 4GB, 50%); default ingestion setting"),
    ] = None,
) -> None:
    """Check raw tables against the contract; quarantine bad rows; write a quality report."""
    from ingestion.validate import validate_raw  # noqa: PLC0415
    from ingestion.validate.flags import FlagLimits  # noqa: PLC0415

    s = get_settings()
    limits = FlagLimits(
        memory_limit or s.ingestion.duckdb_memory_limit, s.ingestion.flag_bucket_rows
    )
    summary = validate_raw(
        raw or s.paths.raw_dir,
        out or s.paths.validated_dir,
        quarantine or s.paths.quarantine_dir,
        reports,
        max_bad_share=max_bad_share,
        limits=limits,
    )
    _summary("validated", summary)


@app.command("ingest-uci")
def ingest_uci(
    csv: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="UCI-format CSV")],
    out: Annotated[Path, typer.Option(help="raw directory to write")] = Path("data_uci/raw"),
    quarantine: Annotated[Path, typer.Option(help="where rejected input rows go")] = Path(
        "data_uci/quarantine"
    ),
) -> None:
    """Map a UCI "default of credit card clients" file onto the raw contract."""
    from ingestion.uci import ingest_uci as run  # noqa: PLC0415

    summary = run(csv, out, quarantine)
    _summary("ingested", summary)


@app.command("build-features")
def build_features(
    raw: PathOpt = None,
    out: PathOpt = None,
    label_grace_days: Annotated[int, typer.Option(min=0, help="late-recording grace")] = 21,
    engine: Annotated[
        str, typer.Option(help="duckdb (one machine) | spark (pyspark and Java 17)")
    ] = "duckdb",
    spark_master: Annotated[
        str, typer.Option(help="with --engine spark: local[N] or a cluster's master URL")
    ] = "local[2]",
    memory_limit: Annotated[
        str | None,
        typer.Option(
            help="with --engine duckdb: memory cap (e.g. 8GB, 50%), the rest spills; "
            "default ingestion setting"
        ),
    ] = None,
    spark_conf: Annotated[
        list[str] | None,
        typer.Option(help="with --engine spark: KEY=VALUE Spark setting, repeatable"),
    ] = None,
    partitions: Annotated[
        int,
        typer.Option(
            min=1,
            help="with --engine duckdb: build a slice of the customers at a time, in N hash "
            "partitions (less spill on disk for a book bigger than memory)",
        ),
    ] = 1,
) -> None:
    """Compute the feature tables and matured labels from validated raw tables."""
    if engine not in ("duckdb", "spark"):
        raise typer.BadParameter(f"unknown engine '{engine}'", param_hint="--engine")
    conf = _key_values(spark_conf or [], "--spark-conf")
    s = get_settings()
    raw, out = raw or s.paths.validated_dir, out or s.paths.features_dir
    if engine == "spark":
        from ingestion.spark_features import build_features_spark  # noqa: PLC0415

        summary = build_features_spark(raw, out, label_grace_days, master=spark_master, conf=conf)
    else:
        from ingestion.features import build_features as run  # noqa: PLC0415

        limit = memory_limit or s.ingestion.duckdb_memory_limit
        summary = run(raw, out, label_grace_days, memory_limit=limit, partitions=partitions)
    _summary("features built", summary)


def _key_values(items: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option)
        pairs[key.strip()] = value
    return pairs


@app.command()
def init(
    force: Annotated[bool, typer.Option(help="overwrite an existing profile")] = False,
) -> None:
    """Make the project home ready: the embedded Feast profile (feature_store.yaml)."""
    import yaml  # noqa: PLC0415

    from ingestion.feast_store import EMBEDDED_PROFILE  # noqa: PLC0415

    s = get_settings()
    profile = s.feature_store_yaml
    if profile.exists() and not force:
        log.info("%s exists; kept (use --force to overwrite)", profile)
        return
    profile.parent.mkdir(parents=True, exist_ok=True)
    profile.write_text(yaml.safe_dump(EMBEDDED_PROFILE, sort_keys=False))
    _summary("initialised", {"home": s.home, "profile": profile, "data": s.paths.data_dir})


@app.command()
def apply(features: PathOpt = None) -> None:
    """Register the feature definitions with Feast (as `feast apply` from the repo root)."""
    from ingestion.feast_store import apply_definitions, features_as_of, open_store  # noqa: PLC0415

    s = get_settings()
    features_dir = features or s.paths.features_dir
    features_as_of(features_dir)  # refuses a folder without built feature tables
    count = len(apply_definitions(open_store(s), features_dir).objects())
    _summary(
        "applied", {"objects": count, "features": features_dir, "profile": s.feature_store_yaml}
    )


@app.command()
def materialize(features: PathOpt = None) -> None:
    """Load the newest snapshot of every online feature view into the online store."""
    from ingestion.feast_store import materialize_newest  # noqa: PLC0415

    s = get_settings()
    loaded = materialize_newest(s, features)
    start, end = loaded or (None, None)
    _summary("materialised", {"start": start, "end": end, "profile": s.feature_store_yaml.name})


@app.command("online-features")
def online_features(
    account: Annotated[list[str] | None, typer.Option(help="account id (repeatable)")] = None,
    sample: Annotated[int, typer.Option(min=1, help="accounts to pick when none given")] = 3,
) -> None:
    """Print the online feature vectors of a few accounts (collection_risk_v1)."""
    import pandas as pd  # noqa: PLC0415

    from ingestion.feast_store import online_feature_vectors, open_store  # noqa: PLC0415

    s = get_settings()
    ids = account or _sample_accounts(s.paths.features_dir, sample)
    store = open_store(s)
    frame = online_feature_vectors(store, ids)
    missing = [a for a, c in zip(frame["account_id"], frame["customer_id"], strict=True) if not c]
    with pd.option_context("display.max_rows", 200, "display.max_colwidth", 60):
        typer.echo(frame.set_index("account_id").T.to_string())
    if missing:
        log.error("no online features for: %s", ", ".join(missing))
        raise typer.Exit(code=1)


def _sample_accounts(features_dir: Path, n: int) -> list[str]:
    import duckdb  # noqa: PLC0415

    path = features_dir / "account_profile.parquet"
    query = (
        f"SELECT account_id FROM read_parquet('{path}') "  # nosec B608  # the operator's own features path; n is an int
        f"WHERE event_timestamp = (SELECT max(event_timestamp) FROM read_parquet('{path}')) "
        f"ORDER BY account_id LIMIT {int(n)}"
    )
    return [row[0] for row in duckdb.connect().execute(query).fetchall()]


# Pipeline stages whose runs are recorded for the console's system-health page.
TRACKED_STAGES = frozenset(
    {
        "generate",
        "validate",
        "ingest-uci",
        "build-features",
        "materialize",
        "rebuild-online",
        "score-batch",
        "train build-dataset",
        "train fit",
        "train evaluate",
        "train register",
        "monitor drift",
        "monitor performance",
        "monitor skew",
        "monitor fairness",
    }
)


def _stage(argv: list[str]) -> str | None:
    words = [a for a in argv if not a.startswith("-")]
    for n in (2, 1):
        candidate = " ".join(words[:n])
        if candidate in TRACKED_STAGES:
            return candidate
    return None


def main() -> None:
    stage = _stage(sys.argv[1:])
    if stage is None:
        app()
        return
    from monitoring.pipeline_runs import recorded_run  # noqa: PLC0415

    with recorded_run(stage):
        app()


@app.command("score-batch")
def score_batch(
    in_file: Annotated[
        Path,
        typer.Option(
            "--in", exists=True, dir_okay=False, help="UCI-format CSV, or a file of account_id"
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(help="scores as .csv, .parquet or .json (by extension) in an existing folder"),
    ],
    model_version: Annotated[str, typer.Option(help="a version or an alias")] = "champion",
) -> None:
    """Score accounts with a registered model: account id, probability, band, decision.

    A UCI-format file needs no outcome column (one there is ignored). In a file of ids, an
    id the scorer would refuse is marked "invalid account id" and not looked up; an id the
    online store does not know is marked "no features for this account".
    """
    from training.batch_scoring import (  # noqa: PLC0415
        check_output,
        read_batch_input,
    )

    # Files first: a bad one is refused in seconds, before MLflow and Feast load.
    check_output(out, source=in_file)
    batch = read_batch_input(in_file)
    from training.batch_scoring import score_uci_file, write_scores  # noqa: PLC0415
    from training.registry import load_scoring_model  # noqa: PLC0415

    model = load_scoring_model(model_version)
    if batch.kind == "uci":
        scores = score_uci_file(in_file, model)
    else:
        scores = _score_id_file(in_file, model, batch.account_ids)
    write_scores(scores, out)
    counts = scores["band"].value_counts().to_dict()
    log.info("scored %d accounts with %s -> %s; bands %s", len(scores), model_version, out, counts)


def _score_id_file(path: Path, model: ScoringModel, ids: Sequence[str]) -> pd.DataFrame:
    """Score ids from the online store; ids the API would refuse are reported with their
    rows and never looked up, unknown ones reported apart."""
    from ingestion.feast_store import open_store  # noqa: PLC0415
    from training.batch_scoring import score_accounts  # noqa: PLC0415

    problem = _account_id_rule()
    problems = [problem(a) for a in ids]
    _report_invalid(path, ids, problems)
    invalid = {a for a, p in zip(ids, problems, strict=True) if p is not None}
    s = get_settings()
    store = open_store(s)
    scores = score_accounts(store, model, ids, is_valid=lambda a: a not in invalid)
    _report_unknown(path, scores)
    return scores


def _account_id_rule() -> Callable[[str], str | None]:
    """What is wrong with an id by the scoring API's own field rule (not a copy of it), or
    None when the API would accept it."""
    from pydantic import TypeAdapter, ValidationError  # noqa: PLC0415

    from serving.schemas import ACCOUNT_ID  # noqa: PLC0415

    adapter = TypeAdapter(Annotated[str, ACCOUNT_ID])

    def problem(account_id: str) -> str | None:
        try:
            adapter.validate_python(account_id)
        except ValidationError as exc:
            return str(exc.errors()[0]["msg"])
        return None

    return problem


def _shown(account_id: str, width: int = 40) -> str:
    # An id from the file, quoted and cut short: it may be anything, of any length.
    return repr(account_id if len(account_id) <= width else account_id[: width - 3] + "...")


def _report_invalid(path: Path, ids: Sequence[str], problems: Sequence[str | None]) -> None:
    from training.batch_scoring import INVALID_ID, where  # noqa: PLC0415

    found = [(i, p) for i, p in enumerate(problems) if p is not None]
    if found:
        first, why = found[0]
        others = ", ".join(_shown(ids[i]) for i, _ in found[1:3])
        log.warning(
            "%s: %d %s(s) on %s, not scored: %s (%s)%s",
            path,
            len(found),
            INVALID_ID,
            where(path, [i for i, _ in found]),
            _shown(ids[first]),
            why,
            f", {others}" if others else "",
        )


def _report_unknown(path: Path, scores: pd.DataFrame) -> None:
    from training.batch_scoring import NO_FEATURES, where  # noqa: PLC0415

    unknown = [int(i) for i in (scores["status"] == NO_FEATURES).to_numpy().nonzero()[0]]
    if unknown:
        examples = ", ".join(_shown(scores["account_id"].iloc[i]) for i in unknown[:3])
        log.warning(
            "%s: %d unknown account(s) on %s (e.g. %s): %s in the online store",
            path,
            len(unknown),
            where(path, unknown),
            examples,
            NO_FEATURES.replace(" for this account", ""),
        )
