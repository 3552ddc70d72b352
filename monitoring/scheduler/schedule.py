"""The schedule file (schedules.yaml): which job runs when, with which arguments.

    jobs:
      drift:                    # the entry's name: its id in the job store, its heartbeat,
        cron: "20 * * * *"      # its Kubernetes CronJob; the job it runs unless `job:` says
        arguments: {window: 1d} # another
        enabled: true

Every problem is an InvalidInputError naming the file, the entry and the field. A cron
expression must mean the same to APScheduler and to a Kubernetes CronJob, which read the
same file: five standard fields, weekdays by name only (APScheduler 3 counts 0 as Monday,
cron as Sunday), no APScheduler extensions (`last`, `2nd mon`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_type_hints

import yaml
from apscheduler.triggers.cron import CronTrigger
from apscheduler.util import obj_to_ref
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from collectwise.errors import InvalidInputError

# A Kubernetes object name has room for "collectwise-" and this.
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_NUMBERS = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?$")
_MONTHS = re.compile(r"^(\*|(\d+|[a-z]{3})(-(\d+|[a-z]{3}))?)(/\d+)?$")
_WEEKDAYS = re.compile(r"^(\*|[a-z]{3}(-[a-z]{3})?)$")
CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_TRIGGER_FIELDS = ("minute", "hour", "day", "month", "day_of_week")
_ENTRY_FIELDS = ("job", "cron", "arguments", "enabled", "description")
# Enough consecutive fire times to see the longest gap of any ordinary schedule.
_SCAN_FIRES = 2000
_SCAN_SPAN = timedelta(days=366)


class ScheduleError(InvalidInputError):
    """The schedule file is missing or wrong; the message names the entry and the field."""


@dataclass(frozen=True)
class JobKind:
    """A job the schedule may name: a module-level function (stored by reference in the job
    store) whose keyword parameters are the arguments an entry may give."""

    name: str
    action: Callable[..., Any]
    description: str

    @property
    def ref(self) -> str:
        return str(obj_to_ref(self.action))

    def arguments(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The given arguments checked and converted by the action's own signature;
        ValidationError names each bad one."""
        model = _arguments_model(self.action)
        return model.model_validate(dict(given)).model_dump(exclude_unset=True)


def _arguments_model(action: Callable[..., Any]) -> type[BaseModel]:
    hints = get_type_hints(action, include_extras=True)
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(action).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[name] = (hints.get(name, Any), default)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    return create_model(f"{action.__name__}_arguments", __config__=config, **fields)


@dataclass(frozen=True)
class ScheduledJob:
    """One entry of the schedule, checked."""

    name: str
    kind: JobKind
    cron: str
    arguments: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    description: str = ""

    def trigger(self, timezone: str) -> CronTrigger:
        return CronTrigger.from_crontab(self.cron, timezone=timezone)

    def interval(self, timezone: str, start: datetime | None = None) -> timedelta:
        return cron_interval(self.trigger(timezone), start)

    def entry_kwargs(self) -> dict[str, Any]:
        """What the job store keeps for a run: plain values only (no settings, no secrets);
        the arguments as written, checked again when the job runs."""
        return {
            "name": self.name,
            "action": self.kind.ref,
            "cron": self.cron,
            "arguments": dict(self.arguments),
        }


@dataclass(frozen=True)
class Schedule:
    path: Path
    jobs: tuple[ScheduledJob, ...]
    text: str

    @property
    def enabled(self) -> list[ScheduledJob]:
        return [job for job in self.jobs if job.enabled]

    def job(self, name: str) -> ScheduledJob:
        for job in self.jobs:
            if job.name == name:
                return job
        known = ", ".join(job.name for job in self.jobs) or "none"
        raise ScheduleError(f"{self.path}: no job {name!r} in the schedule (it has: {known})")


# ---------------------------------------------------------------------------- cron


def check_cron(expression: str, timezone: str) -> CronTrigger:
    """The trigger of a standard five-field expression, or ValueError saying what is wrong."""
    if not isinstance(expression, str):
        raise ValueError(f"must be text like '20 * * * *', got {type(expression).__name__}")
    parts = expression.lower().split()
    if len(parts) != len(CRON_FIELDS):
        raise ValueError(
            f"{expression!r} has {len(parts)} field(s); a cron expression has five: "
            + ", ".join(CRON_FIELDS)
        )
    for name, key, part in zip(CRON_FIELDS, _TRIGGER_FIELDS, parts, strict=True):
        pattern = {"month": _MONTHS, "day of week": _WEEKDAYS}.get(name, _NUMBERS)
        if not all(pattern.match(item) for item in part.split(",")):
            hint = " (weekdays by name, mon-sun: a number means another day to cron)"
            raise ValueError(
                f"{expression!r}: the {name} field {part!r} is not standard cron"
                + (hint if name == "day of week" else "")
            )
        try:  # one field at a time, so the message can say which one is out of range
            CronTrigger(**{key: part}, timezone=timezone)
        except ValueError as exc:
            raise ValueError(f"{expression!r}: the {name} field: {exc}") from None
    return CronTrigger.from_crontab(" ".join(parts), timezone=timezone)


def cron_interval(trigger: CronTrigger, start: datetime | None = None) -> timedelta:
    """The longest gap between consecutive fire times (over a year at most): how long a job
    on this schedule may go without running."""
    now = start or datetime.now(UTC)
    previous = trigger.get_next_fire_time(None, now)
    longest = timedelta(0)
    if previous is None:
        return longest
    first = previous
    for _ in range(_SCAN_FIRES):
        following = trigger.get_next_fire_time(previous, previous)
        if following is None:
            break
        longest = max(longest, following - previous)
        previous = following
        if previous - first > _SCAN_SPAN:
            break
    return longest


# ---------------------------------------------------------------------------- loading


def load_schedule(path: Path, kinds: Mapping[str, JobKind], timezone: str) -> Schedule:
    """Read and check the schedule file against the jobs there are."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScheduleError(
            f"no schedule file at {path}: write one (see schedules.yaml in the repository) "
            "or point COLLECTWISE_SCHEDULER__SCHEDULE_FILE at it"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScheduleError(f"{path}: cannot read the schedule file: {exc}") from None
    return parse_schedule(text, path, kinds, timezone)


def parse_schedule(text: str, path: Path, kinds: Mapping[str, JobKind], timezone: str) -> Schedule:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScheduleError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("jobs"), dict):
        raise ScheduleError(f"{path}: expected a mapping 'jobs:' of job name -> entry")
    extra = sorted(set(document) - {"jobs"})
    if extra:
        raise ScheduleError(f"{path}: unknown top-level key(s) {extra}: only 'jobs' is read")
    jobs = tuple(
        _entry(path, str(name), entry, kinds, timezone) for name, entry in document["jobs"].items()
    )
    return Schedule(Path(path), jobs, text)


def _problem(path: Path, name: str, field_name: str, message: str) -> ScheduleError:
    return ScheduleError(f"{path}: job {name!r}, field {field_name!r}: {message}")


def _entry(
    path: Path, name: str, entry: Any, kinds: Mapping[str, JobKind], timezone: str
) -> ScheduledJob:
    if not _NAME.match(name):
        raise _problem(path, name, "name", "lower-case letters, digits and '-', at most 40")
    if not isinstance(entry, dict):
        raise _problem(path, name, "cron", "the entry must be a mapping with at least 'cron'")
    for key in entry:
        if key not in _ENTRY_FIELDS:
            raise _problem(path, name, str(key), f"unknown field (fields: {_ENTRY_FIELDS})")
    if "cron" not in entry:
        raise _problem(path, name, "cron", "missing")
    try:
        check_cron(entry["cron"], timezone)
    except ValueError as exc:
        raise _problem(path, name, "cron", str(exc)) from None
    kind = _kind(path, name, entry.get("job", name), kinds)
    arguments = _arguments(path, name, kind, entry.get("arguments") or {})
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _problem(path, name, "enabled", f"true or false, got {enabled!r}")
    description = entry.get("description") or kind.description
    return ScheduledJob(
        name, kind, " ".join(entry["cron"].split()), arguments, enabled, description
    )


def _kind(path: Path, name: str, job: Any, kinds: Mapping[str, JobKind]) -> JobKind:
    if not isinstance(job, str) or job not in kinds:
        raise _problem(path, name, "job", f"unknown job {job!r} (jobs: {', '.join(sorted(kinds))})")
    return kinds[job]


def _arguments(path: Path, name: str, kind: JobKind, given: Any) -> dict[str, Any]:
    if not isinstance(given, dict):
        raise _problem(path, name, "arguments", "a mapping of argument name -> value")
    try:
        kind.arguments(given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        takes = ", ".join(inspect.signature(kind.action).parameters) or "none"
        raise _problem(
            path, name, f"arguments.{where}", f"{first['msg']} ({kind.name} takes: {takes})"
        ) from None
    return dict(given)
