"""Validate the raw tables against the contract: good rows out, bad rows quarantined.

Per table, three passes with bounded memory (ingestion.validate.table_run):

1. screen: read each parquet part in batches, coerce every column to the contract's type
   row by row, set aside infinities (a float that is not finite is a bad value), run the
   row schema (ingestion.schemas.row_schema: nulls, allowed values, bounds such as
   contract.MAX_AMOUNT); failing rows go to the quarantine with their reasons, the rest are
   staged with their position (part, row).
2. flag: DuckDB over the staged parts finds what no single part can show: duplicate keys
   and foreign keys missing from the parent's good rows (so a quarantined account takes its
   payments with it). Among the rows that passed screening, the first occurrence of a key
   in part and row order is kept: a row already quarantined for another reason does not
   take the place of a valid one.
3. finish: staged rows not flagged are written as the good table, flagged rows are added to
   the quarantine with their original values.

A problem that makes a table unusable (missing table or column, a column of the wrong type,
too many bad rows) raises ValidationFailed. Output goes to temporary sibling directories
that replace out_dir and quarantine_dir only when every table passed, so a failed run
leaves the previous good state in place.

Modules, from the bottom up:

- errors: ValidationFailed
- workspace: the temporary output directories and their swap
- preflight: which tables to validate, and whether they can be read at all
- coercion: each column to the contract's type, and the problem rows screening reports
- row_checks: the pandera row schema's failures, and the quarantine reasons
- quarantine: the quarantine file
- flags: duplicates and orphans across parts, in DuckDB
- report: ValidationSummary, the log lines, the manifest and a failed run's report
- table_run: one table's three passes
- run: validate_raw, the entry point
"""

from __future__ import annotations

from ingestion.validate.errors import ValidationFailed
from ingestion.validate.report import ValidationSummary
from ingestion.validate.run import validate_raw

__all__ = ["ValidationFailed", "ValidationSummary", "validate_raw"]
