"""One short-lived SQLite connection per call, as serving.audit does.

The console serves requests on several threads; a connection per call carries nothing
across threads, and WAL lets the pages read while an action writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

_BUSY_TIMEOUT_S = 30.0


@contextmanager
def connect(path: Path, schema: Sequence[str]) -> Iterator[sqlite3.Connection]:
    """A connection in autocommit mode, with the schema created if it is missing.

    Each `with conn:` block inside the caller is one transaction.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
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
