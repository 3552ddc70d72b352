"""Report files the console may show: listed under one root, resolved without escaping it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SHOWN_SUFFIXES = (".html",)


def safe_path(root: Path, relative: str) -> Path | None:
    """`root / relative` when it is an existing file inside `root`, else None.

    Resolving both sides (symlinks, "..") before comparing is what keeps a crafted
    path such as "../../secret_key" or an absolute path from reading outside the root.
    """
    if not relative or "\x00" in relative:
        return None
    base = root.resolve()
    try:
        target = (base / relative).resolve()
    except (OSError, RuntimeError):
        return None
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target


def list_reports(root: Path, suffixes: tuple[str, ...] = SHOWN_SUFFIXES) -> list[dict[str, Any]]:
    """HTML reports under `root`, newest first: job (drift, performance ...), stamp, path."""
    if not root.is_dir():
        return []
    base = root.resolve()
    rows = []
    for path in base.rglob("*"):
        if not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        relative = path.relative_to(base)
        parts = relative.parts
        rows.append(
            {
                "job": parts[0] if len(parts) > 1 else "",
                "stamp": parts[1] if len(parts) > 2 else "",
                "file": path.name,
                "path": relative.as_posix(),
                "modified": datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).strftime(
                    "%Y-%m-%d %H:%M"
                ),
            }
        )
    return sorted(rows, key=lambda r: (r["modified"], r["path"]), reverse=True)
