"""`collectwise audit ...`: check the scorer's hash-chained audit log and replay its scores.

`verify` walks the chain; `replay` reloads the exact model version a row names and scores the
logged vector again, so anyone can show that a logged decision is what that model says.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from collectwise.shell import new_app
from serving.audit import AuditLog, AuditRow

if TYPE_CHECKING:
    from training.scoring_model import ScoringModel

app = new_app(
    help="Verify the scorer's hash-chained audit log and replay logged scores.",
    no_args_is_help=True,
)
log = logging.getLogger("collectwise.audit")

# Replayed and logged probabilities must agree to this (the same model on the same row).
TOLERANCE = 1e-9
DbOpt = Annotated[
    Path | None,
    typer.Option("--db", help="audit database (default: the settings' paths.audit_db)"),
]


def _open(db: Path | None) -> AuditLog:
    from collectwise.settings import get_settings  # noqa: PLC0415

    path = db or get_settings().paths.audit_db
    if not path.is_file():
        log.error("no audit log at %s", path)
        raise typer.Exit(code=1)
    return AuditLog(path)


@contextmanager
def _readable(audit: AuditLog) -> Iterator[None]:
    """A file that is not an SQLite database (or not one sqlite3 can read): one clear line
    naming it and exit 1, not sqlite3's traceback."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        log.error("%s: cannot read the audit log: %s", audit.path, exc)
        raise typer.Exit(code=1) from exc


@app.command()
def verify(db: DbOpt = None) -> None:
    """Check every row's hash and link; exit 1 naming the first bad seq."""
    audit = _open(db)
    with _readable(audit):
        result = audit.verify()
    typer.echo(result.summary())
    if not result.ok:
        raise typer.Exit(code=1)


@app.command()
def replay(
    request_id: Annotated[str, typer.Argument(help="the request id the scorer returned")],
    account: Annotated[
        str | None, typer.Option("--account", help="only this account of a batch request")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Score the logged vectors again with the logged model versions; exit 1 on a mismatch."""
    audit = _open(db)
    with _readable(audit):
        rows = audit.rows(request_id, account)
    if not rows:
        which = f"request {request_id}" + (f", account {account}" if account else "")
        log.error("no audit rows for %s", which)
        raise typer.Exit(code=1)
    models: dict[tuple[str, int], ScoringModel] = {}
    matches = [_replay_row(row, _model(models, row.model_name, row.model_version)) for row in rows]
    if not all(matches):
        raise typer.Exit(code=1)


def _model(cache: dict[tuple[str, int], ScoringModel], name: str, version: int) -> ScoringModel:
    """The registered version a row names, loaded once per replay."""
    from collectwise.settings import get_settings  # noqa: PLC0415
    from training.registry import load_version  # noqa: PLC0415

    if (name, version) not in cache:
        # The row's model name, not today's default: a profile may register under another.
        settings = get_settings().mlflow.model_copy(update={"registered_model_name": name})
        cache[name, version] = load_version(version, settings=settings).model
    return cache[name, version]


def _replay_row(row: AuditRow, model: ScoringModel) -> bool:
    """Print logged against replayed for one account; True when all three agree."""
    probability = float(model.predict_proba_rows([row.vector])[0])
    band, decision = model.band(probability), model.decide(probability)
    same = (
        math.isclose(probability, row.probability, rel_tol=0.0, abs_tol=TOLERANCE)
        and band == row.band
        and decision == row.decision
    )
    typer.echo(
        f"seq {row.seq} account {row.account_id} {row.model_name} v{row.model_version} "
        f"({row.model_alias}): logged p={row.probability:.12f} {row.band} "
        f"decision={row.decision} | replayed p={probability:.12f} {band} decision={decision} "
        f"-> {'MATCH' if same else 'MISMATCH'}"
    )
    if not row.intact:
        typer.echo(f"seq {row.seq}: the row no longer matches its hash (run `audit verify`)")
    return same and row.intact
