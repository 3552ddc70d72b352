"""Row checks through pandera, and the quarantine reasons they and coercion add up to."""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import pandas as pd
from pandera.errors import SchemaErrors

from ingestion import schemas
from ingestion.contract import Table
from ingestion.validate.coercion import NOT_FINITE, no_problems, problem_rows, show
from ingestion.validate.errors import ValidationFailed

# Pandera's check names -> the problem a quarantine reason states; bounds add their value.
CHECK_PROBLEMS: Final = {
    "not_nullable": "null",
    "isin": "not allowed",
    schemas.BLANK_CHECK: "blank",
    schemas.FINITE_CHECK: NOT_FINITE,
}


def _column_kind(check: Any, column: str) -> str:
    name = getattr(check, "name", check)
    if name == "greater_than_or_equal_to":
        return f"{column}: less than {check.statistics['min_value']:g}"
    if name == "less_than_or_equal_to":
        return f"{column}: greater than {check.statistics['max_value']:g}"
    return f"{column}: {CHECK_PROBLEMS.get(name, f'failed {name}')}"


def _check_position(number: object) -> int | None:
    """Pandera's check_number: an int, or None / NaN for built-in checks such as nullability."""
    if isinstance(number, int | np.integer):
        return int(number)
    if isinstance(number, float) and not math.isnan(number):
        return int(number)
    return None


def _column_problems(fc: pd.DataFrame, schema: Any, table: Table) -> list[pd.DataFrame]:
    found = []
    for (column, check, number), group in fc.groupby(
        ["column", "check", "check_number"], dropna=False, sort=False
    ):
        checks = schema.columns[str(column)].checks
        position = _check_position(number)
        obj = checks[position] if position is not None else check
        kind = _column_kind(obj, str(column))
        details = [] if kind.endswith(": null") else [show(v) for v in group["failure_case"]]
        details = details or [""] * len(group)
        order = table.column_names.index(str(column))
        found.append(problem_rows(group["index"].to_numpy(), order, kind, details))
    return found


def _frame_problems(fc: pd.DataFrame, typed: pd.DataFrame, table: Table) -> list[pd.DataFrame]:
    found = []
    for rule_no, rule in enumerate(schemas.time_orders(table)):
        rows = np.unique(fc.loc[fc["check"] == rule.reason, "index"].to_numpy(dtype="int64"))
        if len(rows):
            later, earlier = typed[rule.later].iloc[rows], typed[rule.earlier].iloc[rows]
            details = [f"{show(a)} < {show(b)}" for a, b in zip(later, earlier, strict=True)]
            found.append(problem_rows(rows, len(table.columns) + rule_no, rule.reason, details))
    return found


def check_rows(typed: pd.DataFrame, table: Table) -> pd.DataFrame:
    """One problem row per failed pandera check of the row schema."""
    schema = schemas.row_schema(table)
    try:
        schema.validate(typed, lazy=True, inplace=True)
    except SchemaErrors as err:
        fc = err.failure_cases
        if fc["index"].isna().any():
            raise ValidationFailed(f"{table.name}: {err}", table.name) from err
        fc = fc.assign(index=fc["index"].astype("int64"))
        by_column = fc[fc["schema_context"] == "Column"]
        by_frame = fc[fc["schema_context"] != "Column"]
        found = _column_problems(by_column, schema, table)
        found += _frame_problems(by_frame, typed, table)
        return pd.concat([no_problems(), *found], ignore_index=True)
    return no_problems()


def drop_echoes(coerce: pd.DataFrame, checked: pd.DataFrame) -> pd.DataFrame:
    """Both problem lists; a value that could not be read is not also reported as null."""
    echoes = set(zip(coerce["row"], coerce["order"], strict=True))
    is_echo = [
        (r, o) in echoes and k.endswith(": null")
        for r, o, k in zip(checked["row"], checked["order"], checked["kind"], strict=True)
    ]
    kept = checked[~np.array(is_echo, dtype=bool)]
    both = pd.concat([coerce, kept], ignore_index=True)
    return both.drop_duplicates(["row", "kind"])


def reason_texts(problems: pd.DataFrame) -> pd.Series:
    """Row -> "col: problem (value); col: problem" in column order."""
    p = problems.sort_values(["row", "order"], kind="stable")
    detail = p["detail"].astype(str)
    text = p["kind"] + np.where(detail != "", " (" + detail + ")", "")
    return text.groupby(p["row"]).agg("; ".join)
