"""The whole run: every table into a workspace, swapped in only when all of them passed."""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from ingestion import quality
from ingestion.quality import TableCounts
from ingestion.validate.errors import ValidationFailed
from ingestion.validate.flags import FlagLimits, connect
from ingestion.validate.preflight import preflight, tables_to_validate
from ingestion.validate.report import (
    FAILED,
    PASSED,
    ValidationSummary,
    copy_manifest,
    log_summary,
    report_failure,
)
from ingestion.validate.table_run import TableRun
from ingestion.validate.workspace import Workspace

log = logging.getLogger(__name__)


def _progress() -> Progress:
    console = Console(stderr=True)
    return Progress(console=console, transient=True, disable=not console.is_terminal)


def _validate_tables(
    raw_dir: Path,
    ws: Workspace,
    counts: dict[str, TableCounts],
    max_bad_share: float,
    limits: FlagLimits,
) -> None:
    tables = tables_to_validate(raw_dir)
    preflight(raw_dir, tables)
    con = connect(ws.staging, limits.memory_limit)
    try:
        with _progress() as progress:
            for table in tables:
                counts[table.name] = TableCounts()
                try:
                    run = TableRun(
                        table, raw_dir, ws, con, max_bad_share, counts[table.name], progress,
                        limits,
                    )  # fmt: skip
                    run.run()
                except Exception:
                    counts[table.name].status = FAILED
                    raise
    finally:
        con.close()
    copy_manifest(raw_dir, ws.out_tmp)


def _check_paths(raw_dir: Path, ws: Workspace) -> None:
    # Swapping an output directory into place removes what was there: never the raw data.
    for target in (ws.out_dir, ws.quarantine_dir):
        if raw_dir == target or target in raw_dir.parents:
            raise ValueError(f"output directory {target} would replace the raw data {raw_dir}")
    if ws.out_dir == ws.quarantine_dir:
        raise ValueError(f"good and quarantined rows need different directories: {ws.out_dir}")


def validate_raw(
    raw_dir: Path,
    out_dir: Path,
    quarantine_dir: Path,
    report_dir: Path,
    max_bad_share: float = 0.05,
    limits: FlagLimits | None = None,
) -> ValidationSummary:
    """Validate every raw table; write good rows, quarantined rows and the quality report.

    Raises ValidationFailed (after writing a "failed" report) when a table is unusable; then
    out_dir and quarantine_dir keep their previous content. `limits` bound DuckDB's memory
    in the duplicate and orphan checks (the defaults of IngestionSettings when None).
    """
    if not 0.0 <= max_bad_share <= 1.0:
        raise ValueError(f"max_bad_share must lie in [0, 1], got {max_bad_share}")
    raw_dir = Path(raw_dir)
    ws = Workspace(Path(out_dir).resolve(), Path(quarantine_dir).resolve())
    _check_paths(raw_dir.resolve(), ws)
    counts: dict[str, TableCounts] = {}
    ws.create()
    try:
        _validate_tables(raw_dir, ws, counts, max_bad_share, limits or FlagLimits())
    except Exception as err:
        log.error("validation failed: %s", err)
        report_failure(err, counts, ws, Path(report_dir), max_bad_share)
        ws.discard()
        if isinstance(err, OSError):
            # A full disk while staging or writing: one line, the previous output kept.
            raise ValidationFailed(
                f"validation could not write beside {ws.out_dir}: {err}"
            ) from err
        raise
    ws.commit()
    summary = ValidationSummary(PASSED, counts)
    quality.write_quality_report(
        Path(report_dir), counts, ws.out_dir, status=PASSED, max_bad_share=max_bad_share
    )
    log_summary(summary)
    return summary
