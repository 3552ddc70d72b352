"""The output directories: temporary siblings, swapped in only when every table passed."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ingestion.rawio import swap_dir


@dataclass(frozen=True)
class Workspace:
    """Temporary siblings of the output directories, swapped in only on success."""

    out_dir: Path
    quarantine_dir: Path

    def _sibling(self, path: Path, tag: str) -> Path:
        return path.with_name(f"{path.name}.{tag}-{os.getpid()}")

    @property
    def out_tmp(self) -> Path:
        return self._sibling(self.out_dir, "tmp")

    @property
    def quarantine_tmp(self) -> Path:
        return self._sibling(self.quarantine_dir, "tmp")

    @property
    def staging(self) -> Path:
        return self._sibling(self.out_dir, "staging")

    def create(self) -> None:
        self.discard()
        for path in (self.out_tmp, self.quarantine_tmp, self.staging):
            path.mkdir(parents=True)

    def commit(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        swap_dir(self.out_tmp, self.out_dir)
        swap_dir(self.quarantine_tmp, self.quarantine_dir)

    def discard(self) -> None:
        for path in (self.out_tmp, self.quarantine_tmp, self.staging):
            shutil.rmtree(path, ignore_errors=True)
