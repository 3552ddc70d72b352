"""What a run reports: its summary, the log lines, the manifest and a failed run's report."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ingestion import quality
from ingestion.quality import TableCounts
from ingestion.validate.workspace import Workspace

log = logging.getLogger(__name__)

MANIFEST: Final = "_manifest.json"
PASSED: Final = "passed"
FAILED: Final = "failed"


@dataclass
class ValidationSummary:
    """The outcome of validate_raw: per-table counts and reason tallies."""

    status: str
    tables: dict[str, TableCounts]
    error: str | None = None

    @property
    def raw_rows(self) -> int:
        return sum(c.raw for c in self.tables.values())

    @property
    def good_rows(self) -> int:
        return sum(c.good for c in self.tables.values())

    @property
    def quarantined_rows(self) -> int:
        return sum(c.quarantined for c in self.tables.values())


def copy_manifest(raw_dir: Path, out_dir: Path) -> None:
    """Carry the source's manifest (as_of, generator settings) over to the good tables."""
    manifest = raw_dir / MANIFEST
    if manifest.exists():
        shutil.copy2(manifest, out_dir / MANIFEST)


def report_failure(
    err: Exception, counts: dict[str, TableCounts], ws: Workspace, report_dir: Path, share: float
) -> None:
    """Write what is known about a failed run; never hide the original error."""
    try:
        quality.write_quality_report(
            report_dir, counts, ws.out_tmp, status=FAILED, error=str(err), max_bad_share=share
        )
    except Exception:
        log.exception("could not write the quality report of the failed run")


def log_summary(summary: ValidationSummary) -> None:
    for name, c in summary.tables.items():
        top = "; ".join(f"{r} x{n}" for r, n in c.top_reasons(3))
        log.info(
            "%-10s raw %10d  good %10d  quarantined %8d  %s",
            name,
            c.raw,
            c.good,
            c.quarantined,
            top,
        )
    log.info(
        "validation %s: %d raw rows = %d good + %d quarantined",
        summary.status,
        summary.raw_rows,
        summary.good_rows,
        summary.quarantined_rows,
    )
