"""Reading the served-features log by window, and the window arguments themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from monitoring.job_inputs import NothingToMonitorError, served_rows
from monitoring.served import WindowError, parse_moment, parse_window, read_served, stamp

pytestmark = pytest.mark.unit


def write_day(directory: Path, day: str, rows: pd.DataFrame) -> None:
    part = directory / f"date={day}"
    part.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(part / "part-0.parquet", index=False)


def rows(times: list[str], ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": ids,
            "scored_at": pd.to_datetime(times, utc=True),
            "scoring_time": pd.to_datetime(times, utc=True),
            "account_id": ids,
            "v__history": [[1.0, 2.0]] + [None] * (len(ids) - 1),
            "ts__v": pd.to_datetime(["2026-03-01"] * len(ids), utc=True),
        }
    )


def test_read_served_keeps_the_window_only(tmp_path: Path) -> None:
    write_day(tmp_path, "2026-03-01", rows(["2026-03-01 10:00", "2026-03-01 23:00"], ["a", "b"]))
    write_day(tmp_path, "2026-03-02", rows(["2026-03-02 01:00", "2026-03-02 05:00"], ["c", "d"]))
    write_day(tmp_path, "2026-03-05", rows(["2026-03-05 01:00"], ["e"]))
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    served = read_served(tmp_path, start, datetime(2026, 3, 2, 5, tzinfo=UTC))
    assert served["request_id"].tolist() == ["b", "c"]
    assert "date" not in served.columns
    assert str(served["scored_at"].dt.tz) == "UTC" and str(served["ts__v"].dt.tz) == "UTC"
    first_day = read_served(tmp_path, datetime(2026, 3, 1), datetime(2026, 3, 2))
    assert list(first_day["v__history"].iloc[0]) == [1.0, 2.0]
    assert first_day["v__history"].isna().iloc[1]


def test_no_files_give_an_empty_frame(tmp_path: Path) -> None:
    assert read_served(tmp_path / "nothing", datetime(2026, 1, 1), datetime(2026, 2, 1)).empty


def test_window_and_moment_parsing() -> None:
    assert parse_window("7d") == timedelta(days=7)
    assert parse_window("12h") == timedelta(hours=12)
    assert parse_window(" 2W ") == timedelta(weeks=2)
    for bad in ("0d", "7", "seven days", "-1d"):
        with pytest.raises(WindowError):
            parse_window(bad)
    assert parse_moment("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_moment(None, datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(WindowError):
        parse_moment("yesterday")
    assert stamp(datetime(2026, 3, 1, 12, 30, tzinfo=UTC)) == "20260301T123000Z"


def test_monitoring_reads_only_the_scoring_routes(tmp_path: Path) -> None:
    # A counterfactual search logs its account's score for the audit; the jobs must not
    # count an analyst's question as scoring traffic.
    day = rows(["2026-03-01 10:00", "2026-03-01 11:00", "2026-03-01 12:00"], ["a", "b", "c"])
    day["route"] = ["/v1/score", "/v1/counterfactual", "/v1/score/batch"]
    write_day(tmp_path, "2026-03-01", day)
    start, stop = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
    assert served_rows(tmp_path, start, stop)["request_id"].tolist() == ["a", "c"]
    only_questions = day.iloc[[1]]
    write_day(tmp_path / "cf", "2026-03-01", only_questions)
    with pytest.raises(NothingToMonitorError, match="no served rows"):
        served_rows(tmp_path / "cf", start, stop)
