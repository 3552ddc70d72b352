"""The schedule file: every mistake is refused naming the job and the field; a cron means the
same to APScheduler and to Kubernetes; the interval a cron promises; the repository's own
schedules.yaml loads against the real jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collectwise import scheduler_jobs
from collectwise.errors import InvalidInputError
from collectwise.settings import Settings
from monitoring.scheduler.schedule import (
    JobKind,
    ScheduleError,
    check_cron,
    cron_interval,
    load_schedule,
    parse_schedule,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday


def drift_like(window: str = "7d", end: str | None = None, no_alerts: bool = False) -> None:
    """A job whose parameters are those of `collectwise monitor drift` (in part)."""


def plain() -> None:
    """A job without arguments."""


KINDS = {
    "drift": JobKind("drift", drift_like, "drift"),
    "watchdog": JobKind("watchdog", plain, "watchdog"),
}


def _parse(jobs: str) -> list[tuple[str, str, dict[str, object], bool]]:
    schedule = parse_schedule("jobs:\n" + jobs, Path("schedules.yaml"), KINDS, "UTC")
    return [(j.name, j.kind.name, j.arguments, j.enabled) for j in schedule.jobs]


def test_a_good_schedule_names_its_jobs_arguments_and_state() -> None:
    parsed = _parse(
        "  drift:\n    cron: '15 */6 * * *'\n    arguments: {window: 1d}\n"
        "  drift-weekly:\n    job: drift\n    cron: '0 5 * * sun'\n    enabled: false\n"
        "  watchdog:\n    cron: '*/5 * * * *'\n"
    )
    assert parsed == [
        ("drift", "drift", {"window": "1d"}, True),
        ("drift-weekly", "drift", {}, False),
        ("watchdog", "watchdog", {}, True),
    ]


@pytest.mark.parametrize(
    ("entry", "job", "field", "words"),
    [
        ("  drift:\n    cron: '61 * * * *'\n", "drift", "cron", ("minute",)),
        ("  drift:\n    cron: '* * * *'\n", "drift", "cron", ("4 field", "five")),
        ("  drift:\n    cron: '0 3 * * 1'\n", "drift", "cron", ("day of week", "by name")),
        ("  drift:\n    cron: '0 3 * * */2'\n", "drift", "cron", ("day of week",)),
        ("  drift:\n    cron: '0 3 last * *'\n", "drift", "cron", ("day of month",)),
        ("  drift:\n    cron: '0 3 * foo *'\n", "drift", "cron", ("foo",)),
        ("  drift:\n    arguments: {window: 1d}\n", "drift", "cron", ("missing",)),
        ("  nightly:\n    cron: '0 3 * * *'\n", "nightly", "job", ("unknown job", "drift")),
        ("  x:\n    job: retrain\n    cron: '0 3 * * *'\n", "x", "job", ("'retrain'",)),
        ("  drift:\n    cron: '0 3 * * *'\n    when: now\n", "drift", "when", ("unknown",)),
        (
            "  drift:\n    cron: '0 3 * * *'\n    arguments: {windw: 1d}\n",
            "drift",
            "arguments.windw",
            ("window", "end"),
        ),
        (
            "  drift:\n    cron: '0 3 * * *'\n    arguments: {window: 7}\n",
            "drift",
            "arguments.window",
            ("string",),
        ),
        (
            "  watchdog:\n    cron: '0 3 * * *'\n    arguments: [1]\n",
            "watchdog",
            "arguments",
            ("mapping",),
        ),
        ("  drift:\n    cron: '0 3 * * *'\n    enabled: 'yes'\n", "drift", "enabled", ("true",)),
        ("  Drift_Job:\n    cron: '0 3 * * *'\n", "Drift_Job", "name", ("lower-case",)),
    ],
)
def test_a_mistake_names_the_job_and_the_field(
    entry: str, job: str, field: str, words: tuple[str, ...]
) -> None:
    with pytest.raises(ScheduleError) as caught:
        _parse(entry)
    message = str(caught.value)
    assert f"job {job!r}, field {field!r}" in message
    assert all(word in message for word in words), message
    assert isinstance(caught.value, InvalidInputError)  # exit code 1, HTTP 422


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("jobs: [drift]\n", ("mapping",)),
        ("jobs:\n  drift: {cron: '0 3 * * *'}\nextra: 1\n", ("extra",)),
        ("jobs: {drift: {cron: '0 3 * * *'\n", ("not valid YAML",)),
    ],
)
def test_a_malformed_file_is_refused_by_name(text: str, words: tuple[str, ...]) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(text, Path("/etc/cw/schedules.yaml"), KINDS, "UTC")
    assert "/etc/cw/schedules.yaml" in str(caught.value)
    assert all(word in str(caught.value) for word in words)


def test_a_missing_file_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ScheduleError, match=r"no schedule file at .*nothing\.yaml"):
        load_schedule(tmp_path / "nothing.yaml", KINDS, "UTC")


def test_weekday_names_mean_the_same_days_as_cron() -> None:
    # APScheduler 3 would read a numeric weekday 1 as Tuesday, cron as Monday: names only.
    fires = check_cron("0 3 * * mon", "UTC").get_next_fire_time(None, T0)
    assert fires == datetime(2026, 3, 9, 3, 0, tzinfo=fires.tzinfo)
    assert fires.strftime("%a") == "Mon"


@pytest.mark.parametrize(
    ("cron", "interval"),
    [
        ("*/5 * * * *", timedelta(minutes=5)),
        ("15 */6 * * *", timedelta(hours=6)),
        ("0 3 * * *", timedelta(days=1)),
        ("0 3 * * mon-fri", timedelta(days=3)),  # Friday to Monday
        ("0 4 * * sun", timedelta(days=7)),
        ("0 2 1 * *", timedelta(days=31)),
    ],
)
def test_the_interval_is_the_longest_gap_between_runs(cron: str, interval: timedelta) -> None:
    assert cron_interval(check_cron(cron, "UTC"), T0) == interval


def test_a_time_zone_moves_the_fire_time() -> None:
    fires = check_cron("0 9 * * *", "Europe/Berlin").get_next_fire_time(None, T0)
    assert fires.astimezone(UTC).hour == 8  # CET in March before the change


def test_the_repository_schedule_loads_with_every_default_job() -> None:
    settings = Settings(home=REPO)
    schedule = load_schedule(settings.scheduler.schedule_file, scheduler_jobs.kinds(), "UTC")
    names = {job.name for job in schedule.enabled}
    assert names == {"materialize", "drift", "skew", "performance", "fairness",
                     "serving-health", "probation", "watchdog", "retrain"}  # fmt: skip
    drift = schedule.job("drift")
    assert drift.kind.action.__module__ == "collectwise.monitor_cli"  # the command's function
    assert drift.kind.arguments(drift.arguments) == {"window": "1d"}
    with pytest.raises(ScheduleError, match="no job 'nope'"):
        schedule.job("nope")


def test_scheduler_settings_refuse_an_unknown_zone(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        Settings(home=tmp_path, scheduler={"timezone": "Mars/Olympus"})  # type: ignore[arg-type]
    settings = Settings(home=tmp_path)
    assert settings.scheduler.schedule_file == tmp_path.resolve() / "schedules.yaml"
    assert settings.monitoring.fallback_url == (
        (tmp_path.resolve() / "data" / "monitoring" / "escalated-alerts.jsonl").as_uri()
    )
