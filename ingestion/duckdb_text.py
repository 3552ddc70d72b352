"""Text we hand to DuckDB, or say about it: quoted identifiers and literals for SQL built as
strings, and how its memory default reads in an error message."""

from __future__ import annotations

from typing import Final

# What "no memory limit set" means to DuckDB, for messages that name the limit in force.
DUCKDB_DEFAULT_MEMORY: Final = "DuckDB's default, 80% of RAM"


def ident(name: str) -> str:
    """A quoted identifier: "name", with inner quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A quoted string literal (a path, a reason): 'text', with inner quotes doubled."""
    return "'" + text.replace("'", "''") + "'"
