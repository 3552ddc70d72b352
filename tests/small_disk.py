"""A real small filesystem for tests of a full disk."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_disk(path: Path, kilobytes: int) -> Iterator[Path]:
    """A real filesystem of `kilobytes` (tmpfs) at `path`: writes past it fail with ENOSPC."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={kilobytes}k", "tmpfs", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        # Lazy: a failed write's exception (kept by the log capture) may still hold a file
        # open there; the filesystem goes once it is freed.
        subprocess.run(["umount", "--lazy", str(path)], check=True)
