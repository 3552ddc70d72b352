"""Reading the scorer's served-features log, and the time windows the jobs look at.

The log is parquet partitioned by day (`<dir>/date=YYYY-MM-DD/*.parquet`), one row per
scored account: ids, the score and decision, one column per feature under its full Feast
name and `ts__<view>` feature timestamps. serving.servedlog writes it; monitoring reads it
here with DuckDB and never imports serving (imports flow downward, DESIGN.md).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from collectwise.errors import InvalidInputError
from ingestion.features import connect

log = logging.getLogger(__name__)

TIME_COLUMNS = ("scored_at", "scoring_time")
TS_PREFIX = "ts__"
# The routes whose rows are the scored population: a counterfactual search
# (/v1/counterfactual) logs its account's score too, for the audit, but an analyst's
# question about one account is not traffic and must not weigh in drift or outcomes.
SCORING_ROUTES = ("/v1/score", "/v1/score/batch")
PARTITION_COLUMN = "date"
_WINDOW = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


class WindowError(InvalidInputError, ValueError):
    """A window or a moment on the command line cannot be read."""


def parse_window(text: str) -> timedelta:
    """'7d', '12h', '2w' -> a positive timedelta."""
    match = _WINDOW.match(text.lower())
    if not match or int(match.group(1)) == 0:
        raise WindowError(f"window {text!r} is not a positive count of h, d or w (e.g. 7d)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_moment(text: str | None, default: datetime | None = None) -> datetime:
    """An ISO date or datetime (naive means UTC), or `default`, or now."""
    if not text:
        return as_utc(default or datetime.now(UTC))
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError as exc:
        raise WindowError(f"{text!r} is not an ISO date or datetime") from exc


def as_utc(moment: datetime) -> datetime:
    # A naive moment is taken to be UTC already, never local time: the log is in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def stamp(moment: datetime) -> str:
    """A file-name-safe UTC stamp, e.g. 20260301T000000Z, for report directories."""
    return as_utc(moment).strftime("%Y%m%dT%H%M%SZ")


def read_served(directory: Path, start: datetime, end: datetime) -> pd.DataFrame:
    """Served rows with start <= scored_at < end, oldest first; empty without files.

    Day partitions outside the window are pruned before any file is opened; timestamp
    columns come back timezone-aware UTC whatever unit the writer used.
    """
    directory = Path(directory)
    if not any(directory.glob(f"{PARTITION_COLUMN}=*/*.parquet")):
        log.info("no served log under %s", directory)
        return pd.DataFrame()
    start, end = as_utc(start), as_utc(end)
    # Casting both sides: a log written by pandas holds ns timestamps, DuckDB's parameters
    # are us, and DuckDB refuses to compare the two without an explicit cast.
    sql = (
        f"SELECT * FROM read_parquet('{directory}/{PARTITION_COLUMN}=*/*.parquet', "  # nosec B608  # the log folder is ours, values are parameters
        "hive_partitioning = true, union_by_name = true) "
        f"WHERE {PARTITION_COLUMN} BETWEEN $first_day AND $last_day "
        "AND CAST(scored_at AS TIMESTAMPTZ) >= CAST($start AS TIMESTAMPTZ) "
        "AND CAST(scored_at AS TIMESTAMPTZ) < CAST($end AS TIMESTAMPTZ) "
        "ORDER BY scored_at, request_id"
    )
    params = {
        "first_day": start.date(),
        "last_day": end.date(),
        "start": start,
        "end": end,
    }
    con = connect()
    try:
        frame = con.execute(sql, params).df()
    finally:
        con.close()
    log.info("read %d served rows from %s for [%s, %s)", len(frame), directory, start, end)
    return _normalise(frame.drop(columns=[PARTITION_COLUMN], errors="ignore"))


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    # DuckDB hands TIMESTAMPTZ to pandas as naive UTC; make every timestamp explicit UTC.
    for column in frame.columns:
        if column in TIME_COLUMNS or str(column).startswith(TS_PREFIX):
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.reset_index(drop=True)
