"""One short-lived SQLite connection per call, as serving.audit does.

The console serves requests on several threads; a connection per call carries nothing
across threads, and WAL lets the pages read while an action writes.

The console's databases hold password hashes, live sessions and the audit trail, so they
are made readable by their owner only (0600, in a 0700 folder when the folder is new), and
a file found wider than that (made by an older version, or copied in) is narrowed on open.
SQLite gives its -wal and -shm files the database file's mode.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

_BUSY_TIMEOUT_S = 30.0
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
_SIDECARS = ("-wal", "-shm", "-journal")


@contextmanager
def connect(path: Path, schema: Sequence[str]) -> Iterator[sqlite3.Connection]:
    """A connection in autocommit mode, with the schema created if it is missing.

    Each `with conn:` block inside the caller is one transaction.
    """
    make_private(path)
    conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        with conn:
            for statement in schema:
                conn.execute(statement)
        yield conn
    finally:
        conn.close()


def make_private(path: Path) -> None:
    """Create `path` owner-only if it is missing (before SQLite does, with the umask's
    mode), and narrow it and its sidecar files if anyone else may read them."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    # O_CREAT without O_TRUNC: an existing database is opened, never emptied.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
    for file in (path, *(path.with_name(path.name + s) for s in _SIDECARS)):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            file.chmod(PRIVATE_FILE)
            log.warning("%s was readable by others (mode %o): narrowed to 600", file, mode)
