"""`backup create | verify | restore`: a checksummed snapshot of what cannot be rebuilt from
the raw data, and putting it back into a home.

Each database is snapshotted consistently on its own (SQLite's backup API, pg_dump); the
items are taken one after another, so a backup is a point in time per item, not one for all.
A backup is written into a hidden temporary folder inside the backup directory and renamed
into place only once every item and the manifest are on disk: a backup that failed or was
killed never looks whole. A restore checks every checksum before it writes anything, and
refuses to overwrite what a home already holds unless forced.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from collectwise.errors import ConflictError
from collectwise.settings import masked
from monitoring.disaster.copies import PRIVATE_FILE, occupied, put, take
from monitoring.disaster.manifest import (
    MANIFEST,
    BackupRefused,
    Item,
    Manifest,
    checked,
    describe,
    write,
)
from monitoring.disaster.targets import FEAST_PROFILE, ITEMS, Plan, Target, plan

if TYPE_CHECKING:
    from collectwise.settings import Settings

log = logging.getLogger(__name__)

PREFIX = "collectwise-backup-"
PARTIAL_PREFIX = ".partial-"
_SUFFIX = {"sqlite": ".sqlite", "postgresql": ".pgdump", "api-keys": ".json", "tree": ""}


class RestoreConflictError(ConflictError):
    """The home already holds items a restore would overwrite (use --force)."""


@dataclass(frozen=True)
class Outcome:
    """What a create or restore did: the folder, the items, their bytes, the time taken."""

    folder: Path
    items: list[str]
    size: int
    seconds: float
    absent: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)


def _version() -> str:
    try:
        return version("collectwise")
    except PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------- create


def create_backup(
    settings: Settings, parent: Path, exclude: Sequence[str] = (), keep: int | None = None
) -> Outcome:
    """Back the home of `settings` up into a new folder inside `parent`; its path is in the
    outcome. `exclude` names items left out (kept elsewhere, e.g. a managed database); with
    `keep`, only the newest `keep` whole backups in `parent` stay (a scheduled job's)."""
    started = time.monotonic()
    chosen = _checked_plan(settings, exclude)
    _refuse_backup_inside_an_item(parent, chosen)
    parent.mkdir(parents=True, exist_ok=True)
    # mkdtemp makes it owner-only: a backup holds password and key hashes.
    work = Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=parent))
    try:
        manifest = _take_all(settings, chosen, work, exclude)
        write(work, manifest)
        _sync(work)
        final = _final_name(parent, manifest.created_at)
        work.rename(final)
        _sync_dir(parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if keep is not None:
        prune(parent, keep)
    outcome = Outcome(
        final,
        [item.name for item in manifest.items],
        manifest.size,
        time.monotonic() - started,
        manifest.absent,
        manifest.excluded,
    )
    log.info(
        "backup %s: %d items, %d bytes in %.1f s; nothing to take of: %s; left out: %s",
        final,
        len(outcome.items),
        outcome.size,
        outcome.seconds,
        ", ".join(outcome.absent) or "-",
        ", ".join(outcome.excluded) or "-",
    )
    return outcome


def backups_in(parent: Path) -> list[Path]:
    """The whole backups inside a backup directory, oldest first (names sort by time)."""
    return sorted(p for p in parent.glob(f"{PREFIX}*") if (p / MANIFEST).is_file())


def prune(parent: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` whole backups in `parent`; the deleted ones."""
    if keep < 1:
        raise BackupRefused(f"keep {keep}: at least the newest backup must stay")
    old = backups_in(parent)[:-keep]
    for folder in old:
        shutil.rmtree(folder)
        log.info("removed old backup %s", folder)
    return old


def _checked_plan(settings: Settings, exclude: Sequence[str]) -> Plan:
    unknown = sorted(set(exclude) - set(ITEMS))
    if unknown:
        raise BackupRefused(
            f"--exclude {', '.join(unknown)}: no such item; items are {', '.join(ITEMS)}"
        )
    chosen = plan(settings)
    refused = {n: why for n, why in chosen.unsupported.items() if n not in exclude}
    if refused:
        detail = "; ".join(f"{n}: {why}" for n, why in refused.items())
        raise BackupRefused(
            f"cannot back up {detail} (if it is backed up by other means, leave it out with "
            + " ".join(f"--exclude {n}" for n in refused)
            + ")"
        )
    return chosen


def _refuse_backup_inside_an_item(parent: Path, chosen: Plan) -> None:
    # A backup inside a folder it copies would copy itself, and a restore would nest it.
    where = parent.resolve()
    for target in chosen.targets.values():
        if target.kind == "tree" and where.is_relative_to(target.path.resolve()):
            raise BackupRefused(f"{parent}: inside {target.name} ({target.path}); choose another")


def _take_all(settings: Settings, chosen: Plan, work: Path, exclude: Sequence[str]) -> Manifest:
    items: list[Item] = []
    absent: list[str] = []
    for name, target in chosen.targets.items():
        if name in exclude:
            continue
        stored = _stored_name(target)
        if take(target, work / stored, settings):
            items.append(describe(work, name, target.kind, stored, target.shown))
            log.info("took %s from %s (%d bytes)", name, target.shown, items[-1].size)
        else:
            absent.append(name)
            log.info("%s: nothing at %s; not in the backup", name, target.shown)
    excluded = {n: chosen.unsupported.get(n, "left out with --exclude") for n in exclude}
    return Manifest(
        collectwise_version=_version(),
        created_at=datetime.now(UTC),
        home=str(settings.home),
        items=items,
        absent=absent,
        excluded=excluded,
        settings=masked(settings),
    )


def _stored_name(target: Target) -> str:
    suffix = _SUFFIX.get(target.kind, target.path.suffix)
    return f"{target.name}{suffix}"


def _final_name(parent: Path, created: datetime) -> Path:
    base = parent / f"{PREFIX}{created:%Y%m%dT%H%M%SZ}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _sync(folder: Path) -> None:
    """Every file and folder of the backup on disk before the rename that makes it whole."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        else:
            _sync_dir(path)
    _sync_dir(folder)


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- verify, restore


def verify_backup(folder: Path) -> Manifest:
    """The manifest of a backup whose every file matches its checksum; else refused, naming
    each bad item."""
    return checked(folder)


def restore_backup(settings: Settings, folder: Path, force: bool = False) -> Outcome:
    """Put a verified backup back into the home of `settings`, each item where the settings
    say it lives. Nothing is written when the backup is corrupted or incomplete, when an
    item has no place in this home, or (unless `force`) when the home holds any of them."""
    started = time.monotonic()
    manifest = checked(folder)
    places = _places(settings, folder, manifest)
    held = [f"{n} ({t.shown})" for n, t in places.items() if occupied(t, settings)]
    if held and not force:
        raise RestoreConflictError(
            f"the home already holds {', '.join(held)}; restore into an empty home, or "
            "pass --force to replace them (stop the scorer, console and scheduler first)"
        )
    if manifest.home != str(settings.home):
        log.warning(
            "restoring a backup of %s into %s: MLflow records artifact locations as absolute "
            "paths, and `collectwise apply` re-registers the feature tables at their new place",
            manifest.home,
            settings.home,
        )
    for item in manifest.items:
        mode = item.files[0].mode if item.files else PRIVATE_FILE
        put(places[item.name], folder / item.path, mode, settings)
        log.info("restored %s to %s", item.name, places[item.name].shown)
    size = manifest.size
    outcome = Outcome(folder, [i.name for i in manifest.items], size, time.monotonic() - started)
    log.info("restored %d items (%d bytes) in %.1f s", len(outcome.items), size, outcome.seconds)
    return outcome


def _places(settings: Settings, folder: Path, manifest: Manifest) -> dict[str, Target]:
    """Where each backed-up item goes in this home; refused when one has no place here (or a
    place of another kind: a SQLite backup cannot fill a PostgreSQL database)."""
    stored = {item.name: item for item in manifest.items}
    # The Feast registry goes where the restored profile will say, not the current one.
    profile = folder / stored[FEAST_PROFILE].path if FEAST_PROFILE in stored else None
    here = plan(settings, profile)
    wrong = []
    for name, item in stored.items():
        target = here.targets.get(name)
        if target is None:
            wrong.append(f"{name}: {here.unsupported.get(name, 'unknown item')}")
        elif target.kind != item.kind:
            wrong.append(f"{name}: backed up as {item.kind}, this home keeps it in {target.kind}")
    if wrong:
        raise BackupRefused(f"{folder}: cannot restore into {settings.home}: {'; '.join(wrong)}")
    return {name: here.targets[name] for name in stored}
