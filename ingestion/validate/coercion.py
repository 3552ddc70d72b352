"""Coercion, one column at a time, and the problem rows screening reports.

Every column is coerced to the contract's type row by row: a value that does not fit
becomes a problem row (row, column order, kind, offending value) instead of failing the
batch, so the row can be quarantined with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from ingestion.contract import FLOAT, INT, STRING, TIMESTAMP, Table

ARROW_TEXT: Final = pd.StringDtype("pyarrow")
NOT_FINITE: Final = "not finite"

Coerced = tuple[pd.Series, pd.Series, str]


def _numbers(raw: pd.Series) -> pd.Series:
    # to_numeric answers nullable Float64 for arrow-backed text; plain float64 keeps NaN simple.
    return pd.to_numeric(raw, errors="coerce").astype("float64")


def _to_float(raw: pd.Series) -> Coerced:
    values = _numbers(raw)
    return values, raw.notna() & values.isna(), "not a number"


def _to_int(raw: pd.Series) -> Coerced:
    numbers = _numbers(raw)
    # Beyond 2**53 a float no longer tells which integer it was.
    failed = raw.notna() & (numbers.isna() | (numbers % 1 != 0) | (numbers.abs() > 2**53))
    return numbers.where(~failed).astype("Int64"), failed, "not an integer"


def _to_timestamp(raw: pd.Series) -> Coerced:
    if pd.api.types.is_datetime64_any_dtype(raw):
        values = raw.dt.tz_localize("UTC") if raw.dt.tz is None else raw.dt.tz_convert("UTC")
        return values.dt.as_unit("us"), pd.Series(False, index=raw.index), ""
    # ISO 8601 only: other layouts (15/01/2024) are ambiguous, so such rows are quarantined.
    values = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
    return values.dt.as_unit("us"), raw.notna() & values.isna(), "unparseable timestamp"


def _to_string(raw: pd.Series) -> Coerced:
    # Arrow-backed text: checks on it (isin, strip) run in C, not per Python object.
    return raw.astype(ARROW_TEXT), pd.Series(False, index=raw.index), ""


COERCERS: Final[dict[str, Callable[[pd.Series], Coerced]]] = {
    FLOAT: _to_float,
    INT: _to_int,
    TIMESTAMP: _to_timestamp,
    STRING: _to_string,
}


def show(value: Any) -> str:
    """A short rendering of an offending value for a quarantine reason."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def problem_rows(rows: np.ndarray, order: int, kind: str, details: Sequence[str]) -> pd.DataFrame:
    """Problem rows: batch row, column order (for the reason's order), kind, value shown."""
    return pd.DataFrame(
        {"row": rows.astype("int64"), "order": order, "kind": kind, "detail": list(details)}
    )


def no_problems() -> pd.DataFrame:
    return problem_rows(np.array([], dtype="int64"), 0, "", [])


def plain(series: pd.Series) -> pd.Series:
    # Dictionary-encoded parquet columns arrive as categoricals; coerce their values instead.
    return series.astype(object) if isinstance(series.dtype, pd.CategoricalDtype) else series


def coerce_frame(raw: pd.DataFrame, table: Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The batch in the contract's types, and one problem row per value that would not fit."""
    typed: dict[str, pd.Series] = {}
    found = [no_problems()]
    for order, col in enumerate(table.columns):
        source = plain(raw[col.name])
        values, failed, problem = COERCERS[col.dtype](source)
        typed[col.name] = values
        rows = np.flatnonzero(failed.to_numpy())
        if len(rows):
            details = [show(v) for v in source.iloc[rows]]
            found.append(problem_rows(rows, order, f"{col.name}: {problem}", details))
    return pd.DataFrame(typed, index=raw.index), pd.concat(found, ignore_index=True)


def mask_non_finite(typed: pd.DataFrame, raw: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Set +-inf in float columns to NaN in place; one problem row per value masked.

    An infinity reads as a float, so coercion lets it through; reported here as what it is,
    it is not also reported as out of bounds, and the null check it then fails is an echo.
    """
    found = [no_problems()]
    for order, col in enumerate(table.columns):
        if col.dtype != FLOAT:
            continue
        infinite = np.isinf(typed[col.name].to_numpy(dtype="float64", na_value=np.nan))
        rows = np.flatnonzero(infinite)
        if len(rows):
            details = [show(v) for v in raw[col.name].iloc[rows]]
            found.append(problem_rows(rows, order, f"{col.name}: {NOT_FINITE}", details))
            typed[col.name] = typed[col.name].mask(infinite)
    return pd.concat(found, ignore_index=True)
