"""The manifest of a backup: each item's files with size, sha256 and mode, and what was not
taken and why; and the check that a backup folder still holds exactly that.

The manifest is written last, inside the temporary folder, before the folder is renamed into
place: a folder with a manifest is a whole backup, and a check of it finds any file that was
lost, cut short or changed since, naming its item.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ValidationError, field_validator

from collectwise.errors import InvalidInputError
from monitoring.disaster.targets import Kind

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT: Final = 1
_CHUNK = 1 << 20


class BackupRefused(InvalidInputError):  # noqa: N818 - reads as the condition
    """A backup that is incomplete or corrupted, or one that cannot be taken or put back;
    the message names the item(s)."""


def inside(path: str) -> str:
    """A path inside the backup folder: relative, never climbing out of it (a manifest is
    read from wherever the backup came from)."""
    parts = Path(path).parts
    if not parts or Path(path).is_absolute() or ".." in parts:
        raise ValueError(f"{path!r} is not a path inside the backup folder")
    return path


class FileEntry(BaseModel):
    """One file of an item: its path inside the backup folder (POSIX), size, sha256, mode."""

    path: str
    size: int
    sha256: str
    mode: int

    _inside = field_validator("path")(inside)


class Item(BaseModel):
    """One item: where it is in the backup, what it is, where it came from (passwords
    masked), its total size and the sha256 of its file list, and its files."""

    name: str
    kind: Kind
    path: str
    source: str
    size: int
    sha256: str
    files: list[FileEntry]

    _inside = field_validator("path")(inside)


class Manifest(BaseModel):
    format: Literal[1] = FORMAT
    collectwise_version: str
    created_at: datetime
    home: str
    items: list[Item]
    # Items the home had nothing of (a scorer that never ran has no audit log).
    absent: list[str]
    # Items left out, each with the reason (--exclude, or kept elsewhere).
    excluded: dict[str, str]
    # The source settings, every secret masked (collectwise.settings.masked).
    settings: dict[str, Any]

    @property
    def size(self) -> int:
        return sum(item.size for item in self.items)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe(folder: Path, name: str, kind: Kind, path: str, source: str) -> Item:
    """The manifest item of what `path` (inside folder) now holds: a file, or every file of
    a folder."""
    stored = folder / path
    files = sorted(p for p in stored.rglob("*") if p.is_file()) if stored.is_dir() else [stored]
    entries = [
        FileEntry(
            path=f.relative_to(folder).as_posix(),
            size=f.stat().st_size,
            sha256=sha256_of(f),
            mode=f.stat().st_mode & 0o777,
        )
        for f in files
    ]
    return Item(
        name=name,
        kind=kind,
        path=path,
        source=source,
        size=sum(e.size for e in entries),
        sha256=_listing_hash(entries),
        files=entries,
    )


def _listing_hash(entries: list[FileEntry]) -> str:
    listing = "\n".join(f"{e.sha256}  {e.size}  {e.path}" for e in entries)
    return hashlib.sha256(listing.encode()).hexdigest()


def write(folder: Path, manifest: Manifest) -> None:
    (folder / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")


def read(folder: Path) -> Manifest:
    """The manifest of a backup folder; refused when there is none or it does not parse."""
    path = folder / MANIFEST
    if not folder.is_dir():
        raise BackupRefused(f"{folder}: no such backup folder")
    if not path.is_file():
        raise BackupRefused(f"{folder}: not a backup, it has no {MANIFEST}{_hint(folder)}")
    try:
        return Manifest.model_validate(json.loads(path.read_text()))
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raise BackupRefused(f"{path}: unreadable manifest ({where})") from exc
    except ValueError as exc:
        raise BackupRefused(f"{path}: unreadable manifest ({exc})") from exc


def _hint(folder: Path) -> str:
    """Backups inside the folder, newest last: `backup create DIR` writes one per run."""
    inside = sorted(p.name for p in folder.iterdir() if (p / MANIFEST).is_file())
    return f"; it holds backups, the newest {folder / inside[-1]}" if inside else ""


def problems(folder: Path, manifest: Manifest) -> dict[str, list[str]]:
    """What is wrong with each item's files (missing, cut short, changed), by item name;
    empty when every file is as the manifest says."""
    found: dict[str, list[str]] = {}
    for item in manifest.items:
        if not (folder / item.path).exists():
            found[item.name] = [f"{item.path} is missing"]
            continue
        wrong = [p for entry in item.files if (p := _problem(folder, entry))]
        if _listing_hash(item.files) != item.sha256:
            wrong.append("its file list does not match its checksum")
        if wrong:
            found[item.name] = wrong
    return found


def _problem(folder: Path, entry: FileEntry) -> str | None:
    path = folder / entry.path
    if not path.is_file():
        return f"{entry.path} is missing"
    if path.stat().st_size != entry.size:
        return f"{entry.path} has {path.stat().st_size} bytes, not {entry.size}"
    if sha256_of(path) != entry.sha256:
        return f"{entry.path} does not match its sha256"
    return None


def checked(folder: Path) -> Manifest:
    """The manifest of a backup whose every file is intact; refused naming each bad item."""
    manifest = read(folder)
    bad = problems(folder, manifest)
    if bad:
        detail = "; ".join(f"{name}: {', '.join(why[:3])}" for name, why in bad.items())
        raise BackupRefused(
            f"{folder}: corrupted or incomplete backup, {len(bad)} bad item(s): {detail}"
        )
    log.info("%s: %d items intact (%d files)", folder, len(manifest.items), _files(manifest))
    return manifest


def _files(manifest: Manifest) -> int:
    return sum(len(item.files) for item in manifest.items)
