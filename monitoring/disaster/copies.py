"""Taking one item out of a home and putting it back, by kind.

- sqlite: SQLite's online backup API (`Connection.backup`), never a file copy: a copy of a
  live database can catch a transaction half written, or miss what still sits in its WAL.
  Restoring goes through the same API into the destination, so SQLite itself writes it.
- postgresql: `pg_dump --format=custom` and `pg_restore --clean`, the server's own tools.
  The password never reaches the command line: it goes in a temporary passfile (0600).
- file: read until two reads agree, since some writers rewrite a file in place (Feast's file
  registry does); written back under a temporary name and renamed over the destination.
- tree: a folder copied file by file, without the hidden temporary files writers rename
  into place (the served-feature log's); put back beside the destination and swapped in.
- api-keys: the scorer's key entries (hashes only) as JSON; put back into the settings'
  keys file when there is one, else into the home's .env.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
import yaml
from dotenv import set_key

from collectwise.errors import InvalidInputError, UnavailableError
from monitoring.disaster.targets import Target

if TYPE_CHECKING:
    from collectwise.settings import Settings

log = logging.getLogger(__name__)

KEYS_VARIABLE = "COLLECTWISE_SERVING__API_KEYS"
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
_BUSY_TIMEOUT_S = 30.0
_STABLE_READS = 5
_HIDDEN_TEMPORARY = ".*.tmp"


class CopyError(InvalidInputError):
    """An item that could not be taken or put back; the message names it."""


# --------------------------------------------------------------------------- take


def take(target: Target, out: Path, settings: Settings) -> bool:
    """Write the target's current content to `out` (a file, or a folder for a tree); False
    when the home has none (a scorer that never ran has no audit log)."""
    if target.kind == "postgresql":
        _dump_postgresql(target, out)
        return True
    if target.kind == "api-keys":
        return _take_api_keys(settings, out)
    if not target.path.exists():
        return False
    if target.kind == "sqlite":
        _take_sqlite(target, out)
    elif target.kind == "tree":
        shutil.copytree(target.path, out, ignore=shutil.ignore_patterns(_HIDDEN_TEMPORARY))
    else:
        out.write_bytes(_stable_bytes(target.path))
    out.chmod(_mode(target.path))
    return True


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _take_sqlite(target: Target, out: Path) -> None:
    # Read-only: a backup must never create or change the database it reads.
    source = f"{target.path.as_uri()}?mode=ro"
    try:
        with (
            closing(sqlite3.connect(source, uri=True, timeout=_BUSY_TIMEOUT_S)) as src,
            closing(sqlite3.connect(out)) as dst,
        ):
            src.backup(dst)
    except sqlite3.DatabaseError as exc:
        raise CopyError(f"{target.name}: cannot read {target.path}: {exc}") from exc


def _stable_bytes(path: Path) -> bytes:
    """The file's bytes once two reads in a row agree (a writer may be rewriting it)."""
    previous = path.read_bytes()
    for _ in range(_STABLE_READS):
        current = path.read_bytes()
        if current == previous:
            return current
        previous = current
    raise CopyError(f"{path}: kept changing while it was read; try again")


def _take_api_keys(settings: Settings, out: Path) -> bool:
    entries = [entry.model_dump(mode="json") for entry in settings.serving.key_entries()]
    if not entries:
        return False
    out.write_text(json.dumps(entries, indent=2) + "\n")
    out.chmod(PRIVATE_FILE)
    return True


# --------------------------------------------------------------------------- put back


def occupied(target: Target, settings: Settings) -> bool:
    """Whether the destination holds something a restore would overwrite."""
    if target.kind == "postgresql":
        return _has_tables(target)
    if target.kind == "api-keys":
        return bool(settings.serving.key_entries())
    if target.kind == "tree":
        return target.path.is_dir() and any(target.path.iterdir())
    return target.path.exists()


def put(target: Target, stored: Path, mode: int, settings: Settings) -> None:
    """Put a stored item back where the target says, replacing what is there."""
    if target.kind == "postgresql":
        _restore_postgresql(target, stored)
    elif target.kind == "api-keys":
        _put_api_keys(settings, stored)
    elif target.kind == "sqlite":
        _put_sqlite(target, stored, mode)
    elif target.kind == "tree":
        _put_tree(target.path, stored)
    else:
        _put_file(target.path, stored.read_bytes(), mode)


def _put_sqlite(target: Target, stored: Path, mode: int) -> None:
    _create(target.path, mode)
    # immutable: the stored copy is only read, and SQLite need not lock it or look for a WAL.
    source = f"{stored.as_uri()}?mode=ro&immutable=1"
    try:
        with (
            closing(sqlite3.connect(source, uri=True)) as src,
            closing(sqlite3.connect(target.path, timeout=_BUSY_TIMEOUT_S)) as dst,
        ):
            src.backup(dst)
    except sqlite3.DatabaseError as exc:
        raise CopyError(f"{target.name}: cannot restore into {target.path}: {exc}") from exc


def _create(path: Path, mode: int) -> None:
    """Make a missing file with its recorded mode before anything else creates it with the
    umask's (the console's databases are owner-only)."""
    _make_parent(path, mode)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, mode))
    path.chmod(mode)


def _make_parent(path: Path, mode: int) -> None:
    # An owner-only file gets an owner-only folder when the folder is new, as the console
    # makes its own (admin_app.db).
    private = not mode & 0o077
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR if private else 0o777)


def _put_file(path: Path, data: bytes, mode: int) -> None:
    _make_parent(path, mode)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _put_tree(path: Path, stored: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    incoming = path.with_name(f".{path.name}.{tag}.restoring")
    outgoing = path.with_name(f".{path.name}.{tag}.replaced")
    shutil.copytree(stored, incoming)
    try:
        if path.exists():
            path.rename(outgoing)
        incoming.rename(path)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
        shutil.rmtree(outgoing, ignore_errors=True)


def _put_api_keys(settings: Settings, stored: Path) -> None:
    entries = json.loads(stored.read_text())
    keys_file = settings.serving.api_keys_file
    if keys_file is not None:
        _put_file(keys_file, yaml.safe_dump(entries, sort_keys=False).encode(), PRIVATE_FILE)
        return
    env_file = settings.home / ".env"
    # The .env may hold other secrets: owner-only when it is new.
    _create(env_file, _mode(env_file) if env_file.exists() else PRIVATE_FILE)
    set_key(env_file, KEYS_VARIABLE, json.dumps(entries, separators=(",", ":")))


# --------------------------------------------------------------------------- PostgreSQL


def _tool(name: str, target: Target) -> str:
    found = shutil.which(name)
    if found is None:
        raise CopyError(
            f"{target.name}: {target.shown} is PostgreSQL and {name} is not installed "
            "(apt-get install postgresql-client); install it, or leave the item out "
            f"with --exclude {target.name}"
        )
    return found


def _dump_postgresql(target: Target, out: Path) -> None:
    pg_dump = _tool("pg_dump", target)
    with _conninfo(target.location) as conninfo:
        _run(target, [pg_dump, "--format=custom", "--no-owner", f"--file={out}", conninfo])
    out.chmod(PRIVATE_FILE)


def _restore_postgresql(target: Target, stored: Path) -> None:
    pg_restore = _tool("pg_restore", target)
    args = ["--clean", "--if-exists", "--no-owner", "--single-transaction", "--exit-on-error"]
    with _conninfo(target.location) as conninfo:
        _run(target, [pg_restore, *args, f"--dbname={conninfo}", str(stored)])


def _run(target: Target, command: list[str]) -> None:
    # Arguments are a list (no shell); the connection string holds no password.
    done = subprocess.run(  # nosec B603  # pg_dump/pg_restore by absolute path, our argv
        command, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = lines[-1] if lines else f"exit code {done.returncode}"
        raise UnavailableError(f"{target.name}: {Path(command[0]).name} failed: {why}")


@contextmanager
def _conninfo(url: str) -> Iterator[str]:
    """A libpq connection URI for a SQLAlchemy URL, its password in a temporary passfile."""
    parsed = sa.engine.make_url(url)
    libpq = parsed.set(drivername="postgresql", password=None)
    if parsed.password is None:
        yield libpq.render_as_string(hide_password=False)
        return
    with tempfile.TemporaryDirectory(prefix="cw-pgpass-") as folder:
        passfile = Path(folder) / "pgpass"
        secret = str(parsed.password).replace("\\", "\\\\").replace(":", "\\:")
        _put_file(passfile, f"*:*:*:*:{secret}\n".encode(), PRIVATE_FILE)
        yield libpq.update_query_dict({"passfile": str(passfile)}).render_as_string(
            hide_password=False
        )


def _has_tables(target: Target) -> bool:
    engine = sa.create_engine(target.location)
    query = sa.text(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
    )
    try:
        with engine.connect() as conn:
            return bool(conn.execute(query).scalar())
    except sa.exc.OperationalError as exc:
        raise UnavailableError(f"{target.name}: {target.shown} is unreachable") from exc
    finally:
        engine.dispose()
