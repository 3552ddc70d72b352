"""Pandera schemas for the raw tables, derived from the data contract (ingestion.contract).

Two schemas per table:

- ``table_schema``: the whole contract (dtypes, nullability, allowed values, finite floats,
  bounds, uniqueness, cross-column time order). Validated rows must pass it.
- ``row_schema``: only what can be judged row by row, for data that was already coerced to
  the contract's types. It leaves out dtypes (a non-nullable integer column must hold
  missing values as ``Int64`` until those rows are quarantined) and uniqueness (duplicates
  cross parquet parts, so ingestion.validate checks them globally in DuckDB).

Rules that the contract does not spell out column by column live here, named once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
import pandera.pandas as pa

from ingestion.contract import FLOAT, STRING, Column, Table

# Ordered time pairs (earlier, later) beyond "recorded no earlier than it happened":
# a debt is placed with collections after the account opened; a promise falls due after
# it was made.
TIME_ORDER_RULES: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "accounts": (("opened_at", "placed_at"),),
    "promises": (("made_at", "due_date"),),
}

# Allowed values for non-string columns (the contract's `allowed` holds strings only).
EXTRA_ALLOWED: Final[dict[tuple[str, str], tuple[int, ...]]] = {
    ("outcomes", "default_30d"): (0, 1),
}

# Keys made of several columns; the contract can express single-column uniqueness only.
COMPOSITE_KEYS: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    "outcomes": (("account_id", "snapshot_at"),),
}

BLANK_CHECK: Final = "not_blank"
FINITE_CHECK: Final = "finite"


@dataclass(frozen=True)
class TimeOrder:
    """A row-level rule: column ``later`` must not hold a time before column ``earlier``."""

    earlier: str
    later: str

    @property
    def reason(self) -> str:
        return f"{self.later}: before {self.earlier}"

    def holds(self, df: pd.DataFrame) -> pd.Series:
        # Missing times are judged by the nullability checks, not here.
        later, earlier = df[self.later], df[self.earlier]
        return later.isna() | earlier.isna() | (later >= earlier)


def time_orders(table: Table) -> tuple[TimeOrder, ...]:
    """Every time-order rule of a table: recorded >= event time, plus TIME_ORDER_RULES."""
    rules: list[TimeOrder] = []
    if table.recorded_time and table.event_time:
        rules.append(TimeOrder(earlier=table.event_time, later=table.recorded_time))
    rules.extend(TimeOrder(earlier=e, later=la) for e, la in TIME_ORDER_RULES.get(table.name, ()))
    return tuple(rules)


def unique_keys(table: Table) -> tuple[tuple[str, ...], ...]:
    """Every key of a table: each unique column on its own, then the composite keys."""
    singles = tuple((c.name,) for c in table.columns if c.unique)
    return singles + COMPOSITE_KEYS.get(table.name, ())


def _not_blank(series: pd.Series) -> pd.Series:
    return series.str.strip().str.len() > 0


def _finite(series: pd.Series) -> pd.Series:
    # Null is judged by nullability; here only +-inf fails.
    return ~series.isin([np.inf, -np.inf])


def column_checks(table: Table, column: Column) -> list[pa.Check]:
    """The value checks of one column: allowed values, finiteness, bounds, no blank ids."""
    checks: list[pa.Check] = []
    if column.allowed:
        checks.append(pa.Check.isin(list(column.allowed)))
    extra = EXTRA_ALLOWED.get((table.name, column.name))
    if extra:
        checks.append(pa.Check.isin(list(extra)))
    if column.dtype == FLOAT:
        checks.append(pa.Check(_finite, name=FINITE_CHECK, error=FINITE_CHECK))
    if column.min_value is not None:
        checks.append(pa.Check.ge(column.min_value))
    if column.max_value is not None:
        checks.append(pa.Check.le(column.max_value))
    if column.dtype == STRING and not column.allowed:
        # An identifier made of spaces is as missing as a null one.
        checks.append(pa.Check(_not_blank, name=BLANK_CHECK, error=BLANK_CHECK))
    return checks


def _column(table: Table, column: Column, *, full: bool) -> pa.Column:
    return pa.Column(
        column.dtype if full else None,
        checks=column_checks(table, column),
        nullable=column.nullable,
        unique=column.unique and full,
        report_duplicates="exclude_first",
        name=column.name,
        description=column.description or None,
    )


def _frame_checks(table: Table) -> list[pa.Check]:
    return [
        pa.Check(rule.holds, name=rule.reason, error=rule.reason) for rule in time_orders(table)
    ]


def table_schema(table: Table) -> pa.DataFrameSchema:
    """The full contract of a table, for rows in the contract's dtypes."""
    composite = COMPOSITE_KEYS.get(table.name, ())
    if len(composite) > 1:
        raise ValueError(f"{table.name}: pandera checks one composite key per schema")
    return pa.DataFrameSchema(
        {c.name: _column(table, c, full=True) for c in table.columns},
        checks=_frame_checks(table),
        unique=list(composite[0]) if composite else None,
        report_duplicates="exclude_first",
        strict=True,
        ordered=True,
        name=table.name,
    )


def row_schema(table: Table) -> pa.DataFrameSchema:
    """The row-by-row part of a table's contract, for rows already coerced to its types."""
    return pa.DataFrameSchema(
        {c.name: _column(table, c, full=False) for c in table.columns},
        checks=_frame_checks(table),
        name=f"{table.name}_rows",
    )
