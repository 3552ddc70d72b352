"""The quarantine file: rejected rows with their original values, reasons and source."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.contract import Table
from ingestion.validate.coercion import plain


def _as_text(series: pd.Series) -> pd.Series:
    return plain(series).astype("string")


def quarantine_frame(
    raw: pd.DataFrame,
    table: Table,
    rows: np.ndarray,
    reasons: Sequence[str],
    *,
    part: Path,
    offset: int,
) -> pd.DataFrame:
    """The original values of the given rows as text, with reason and where they came from."""
    out = pd.DataFrame({c: _as_text(raw[c].iloc[rows]).to_numpy() for c in table.column_names})
    out["reason"] = list(reasons)
    out["source_part"] = part.name
    out["source_row"] = rows.astype("int64") + offset
    return out


class QuarantineSink:
    """Streams a table's quarantined rows into one parquet file."""

    def __init__(self, path: Path, table: Table) -> None:
        self.path = path
        fields = [pa.field(c, pa.string()) for c in [*table.column_names, "reason", "source_part"]]
        self.schema = pa.schema([*fields, pa.field("source_row", pa.int64())])
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, self.schema)
        self.writer.write_table(
            pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        )
        self.rows += len(frame)

    def close(self) -> None:
        if self.writer is None:
            pq.write_table(self.schema.empty_table(), self.path)
        else:
            self.writer.close()
