"""The feature SQL of feature_repo.transformations on engines other than DuckDB.

The SQL is written once, in DuckDB's dialect. For Spark each statement is split into the
table it creates and its query, and the query is translated by sqlglot at run time: no query
exists twice. Translation is only safe inside the subset both engines agree on, which
`portability_problems` checks (tests/unit/test_feature_portability.py runs it on every
statement):

- the statement is ``CREATE OR REPLACE TEMP TABLE name AS <query>``;
- no construct without a faithful translation: table functions (range, generate_series,
  unnest), ASOF or POSITIONAL joins, QUALIFY, aggregate FILTER, PIVOT, lambdas; only
  functions on ALLOWED_FUNCTIONS, each checked for equal results on both engines by the
  parity tests (tests/spark);
- day counts only between DATEs: on timestamps DuckDB counts calendar days and Spark whole
  24-hour spans;
- no arithmetic whose type is DECIMAL, as Spark types it (an integer plus ``1.0`` is a
  DECIMAL there, and its division rounds to 16 places where DuckDB's is a DOUBLE), and none
  whose type cannot be told: cast such operands to DOUBLE. Arithmetic of literals alone is
  exact on both engines and allowed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from feature_repo import transformations as tx
from ingestion.contract import ALL_TABLES

SOURCE_DIALECT = "duckdb"
PARAMETERS = frozenset({"labels_as_of", "label_grace_days"})

# Functions (sqlglot's classes) whose Spark translation gives DuckDB's results; one enters
# the list together with a parity test that uses it. CASE arms (If) and AND / OR are
# functions to sqlglot.
ALLOWED_FUNCTIONS: frozenset[type[exp.Func]] = frozenset(
    {
        exp.Abs,
        exp.And,
        exp.ArgMin,
        exp.Array,
        exp.Avg,
        exp.Case,
        exp.Cast,
        exp.Coalesce,
        exp.Count,
        exp.DateDiff,
        exp.Greatest,
        exp.If,
        exp.Least,
        exp.Max,
        exp.Min,
        exp.Month,
        exp.Or,
        # round(double, 2): both engines round half away from zero to the nearest cent
        exp.Round,
        exp.RowNumber,
        exp.StddevPop,
        exp.Sum,
        exp.Year,
    }
)
# Constructs with no faithful Spark translation, by what to call them in a message.
_DENIED: tuple[tuple[type[exp.Expr], str], ...] = (
    (exp.Qualify, "QUALIFY"),
    (exp.Filter, "an aggregate FILTER clause"),
    (exp.Pivot, "PIVOT / UNPIVOT"),
    (exp.Lambda, "a lambda"),
    (exp.Unnest, "UNNEST"),
    (exp.Lateral, "LATERAL"),
    (exp.GenerateSeries, "range() / generate_series()"),
)
_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div)


@dataclass(frozen=True)
class Statement:
    """One feature statement: the table it creates and the query that fills it."""

    table: str
    query: exp.Query


def parse_statement(sql: str) -> Statement:
    """Split ``CREATE OR REPLACE TEMP TABLE name AS <query>`` into its parts."""
    tree = sqlglot.parse_one(sql, read=SOURCE_DIALECT)
    temporary = tree.find(exp.TemporaryProperty) is not None
    if not (isinstance(tree, exp.Create) and tree.kind == "TABLE" and temporary):
        raise ValueError(f"not a CREATE TEMP TABLE ... AS statement: {sql.strip()[:80]!r}")
    if not (tree.args.get("replace") and isinstance(tree.expression, exp.Query)):
        raise ValueError(f"not CREATE OR REPLACE ... AS <query>: {sql.strip()[:80]!r}")
    return Statement(tree.this.name, tree.expression)


def to_spark(sql: str) -> tuple[str, str]:
    """The table a statement creates and its query in Spark SQL (parameters as ``:name``)."""
    statement = parse_statement(sql)
    spark_sql = statement.query.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)
    return statement.table, spark_sql


def query_to_spark(sql: str) -> str:
    """A bare query (not a CREATE statement) in Spark SQL."""
    query = sqlglot.parse_one(sql, read=SOURCE_DIALECT)
    return query.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)


def portability_problems(statements: Sequence[str]) -> list[str]:
    """What in these statements (in the order they run) is outside the portable subset;
    empty when nothing is. Each problem is one line naming the table and the construct."""
    schema: dict[str, object] = dict(raw_schema())
    problems: list[str] = []
    for sql in statements:
        try:
            statement = parse_statement(sql)
            to_spark(sql)
        except (ValueError, SqlglotError) as exc:
            problems.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
            continue
        found = list(_construct_problems(statement.query))
        found += _type_problems(statement, schema)
        problems += [f"{statement.table}: {p}" for p in dict.fromkeys(found)]
    return problems


def raw_schema() -> dict[str, dict[str, str]]:
    """The column types of every relation the statements start from, in Spark's terms."""
    schema = {t.name: {c.name: _sql_type(c.dtype) for c in t.columns} for t in ALL_TABLES}
    schema[tx.CALENDAR_TABLE] = {"snapshot_at": "TIMESTAMP"}
    return schema


def _sql_type(dtype: str) -> str:
    if dtype.startswith("datetime64"):
        return "TIMESTAMP"
    kinds = {"float": "DOUBLE", "int": "BIGINT", "bool": "BOOLEAN"}
    return next((v for k, v in kinds.items() if dtype.lower().startswith(k)), "STRING")


def _construct_problems(query: exp.Query) -> Iterator[str]:
    for node in query.walk():
        yield from _denied(node)
        if isinstance(node, exp.Func) and type(node) not in ALLOWED_FUNCTIONS:
            yield f"function {_function_name(node)} is not on ALLOWED_FUNCTIONS"
        if isinstance(node, exp.DateDiff):
            yield from _date_diff_problems(node)
        if isinstance(node, exp.Placeholder | exp.Parameter) and node.name not in PARAMETERS:
            yield f"parameter ${node.name} is not one of {sorted(PARAMETERS)}"


def _denied(node: exp.Expr) -> Iterator[str]:
    for kind, what in _DENIED:
        if isinstance(node, kind):
            yield f"{what} has no faithful Spark translation"
    if isinstance(node, exp.Join) and node.args.get("method"):
        yield f"{node.args['method']} JOIN has no faithful Spark translation"
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Func):
        yield f"table function {_function_name(node.this)} has no faithful Spark translation"
    if isinstance(node, exp.Star) and any(node.args.get(k) for k in ("except_", "replace")):
        yield "SELECT * EXCLUDE / REPLACE has no faithful Spark translation"


def _function_name(node: exp.Expr) -> str:
    return node.name if isinstance(node, exp.Anonymous) else type(node).__name__


def _date_diff_problems(node: exp.DateDiff) -> Iterator[str]:
    unit = node.args.get("unit")
    if unit is None or unit.name.lower() != "day":
        yield f"date_diff by {unit.name if unit else '?'}: only days are portable"
    for arg in (node.this, node.expression):
        if not (isinstance(arg, exp.Cast) and arg.to.is_type(exp.DType.DATE)):
            yield f"date_diff of {arg.sql(SOURCE_DIALECT)}: cast both sides to DATE"


def _type_problems(statement: Statement, schema: dict[str, object]) -> list[str]:
    """Type the query as Spark would (decimal literals as DECIMAL) and report DECIMAL or
    untyped arithmetic; records the table's column types for the statements after it."""
    try:
        query = qualify(statement.query.copy(), schema=schema, dialect=SOURCE_DIALECT)
        query = annotate_types(query, schema=schema, expression_metadata=_spark_typing())
    except SqlglotError as exc:
        return [f"cannot be typed: {str(exc).splitlines()[0]}"]
    schema[statement.table] = {
        s.alias_or_name: s.type.sql("spark") if s.type else "UNKNOWN" for s in query.selects
    }
    problems = []
    for node in query.find_all(*_ARITHMETIC):
        typed = node.type.this if node.type else exp.DType.UNKNOWN
        constant = not any(node.find_all(exp.Column))
        text = node.sql(SOURCE_DIALECT)[:100]
        if typed == exp.DType.UNKNOWN:
            problems.append(f"{text} has no type that can be told: cast its operands")
        elif typed == exp.DType.DECIMAL and not constant:
            problems.append(f"{text} is a DECIMAL in Spark: cast its operands to DOUBLE")
    return problems


def _spark_typing() -> dict[type[exp.Expr], dict[str, Any]]:
    """sqlglot's Spark typing with two corrections: a literal with a fraction is a DECIMAL
    (sqlglot says DOUBLE, Spark says DECIMAL), and arg_min has its first argument's type."""
    typing = dict(Spark.EXPRESSION_METADATA)
    typing[exp.Literal] = {"annotator": _annotate_literal}
    typing[exp.ArgMin] = {"annotator": lambda self, e: self._annotate_by_args(e, "this")}
    return typing


def _annotate_literal(annotator: Any, literal: exp.Literal) -> exp.Literal:
    if literal.is_string:
        kind: exp.DType | exp.DataType = exp.DType.VARCHAR
    elif literal.is_int:
        kind = exp.DType.INT
    else:
        kind = exp.DataType.build("DECIMAL")
    annotator._set_type(literal, kind)
    return literal
