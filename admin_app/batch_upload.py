"""The I/O of a batch upload: save it, check it, score it in a job, write the result.

Scoring goes through training.batch_scoring (the `collectwise score-batch` code) with the model
the console's scoring service holds as champion, so a batch file and an API call agree.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from admin_app.background_jobs import Job, JobResult, Report, Work
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

if TYPE_CHECKING:
    from admin_app.backends import Backends
    from training.scoring_model import ScoringModel

log = logging.getLogger(__name__)

CHUNK = 200


def save_upload(b: Backends, job: Job, contents: str | None, filename: str | None) -> Path:
    """Write the upload into the job's folder; UploadError when it is not a CSV or parquet."""
    kind = upload_kind(filename)
    data = decode_upload(contents, b.settings.max_upload_mb * 1024 * 1024)
    path = b.jobs.workdir(job.id) / f"input.{kind}"
    path.write_bytes(data)
    return path


def check_upload(b: Backends, path: Path) -> list[str] | None:
    """None for a UCI-format file (checked while it is scored), else the id file's problems."""
    from training.batch_scoring import is_uci_file  # noqa: PLC0415

    try:
        if is_uci_file(path):
            return None
    except UnicodeDecodeError as exc:
        raise UploadError(f"the CSV is not UTF-8 text: {exc}") from exc
    kind = upload_kind(path.name)
    return account_id_problems(read_frame(path.read_bytes(), kind), kind, b.settings.max_batch_rows)


def make_work(b: Backends, path: Path, model: ScoringModel, out: Path, version: int) -> Work:
    """The job body: score the file at `path` with `model`, write the result to `out`."""

    def work(report: Report) -> JobResult:
        from training.batch_scoring import is_uci_file, score_uci_file, write_scores  # noqa: PLC0415

        if is_uci_file(path):
            report(0.1, "UCI-format file: adapter, contract and features, then scoring")
            scores = score_uci_file(path, model, work_dir=path.parent / "uci")
        else:
            scores = _score_ids(b, path, model, report)
        write_scores(scores, out)
        return JobResult(len(scores), f"{summarise(scores)} with model v{version}")

    return work


def _score_ids(b: Backends, path: Path, model: ScoringModel, report: Report) -> pd.DataFrame:
    from training.batch_scoring import score_accounts  # noqa: PLC0415

    kind = upload_kind(path.name)
    ids = account_ids(read_frame(path.read_bytes(), kind))
    parts = []
    for done, chunk in enumerate(chunks(ids, CHUNK), start=1):
        parts.append(score_accounts(b.store(), model, list(chunk)))
        scored = min(done * CHUNK, len(ids))
        report(scored / len(ids), f"scored {scored} of {len(ids)} accounts")
    return pd.concat(parts, ignore_index=True)
