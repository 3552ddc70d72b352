"""The feature SQL stays in the subset that DuckDB and Spark agree on (ingestion.feature_sql):
every statement passes the check, and the check refuses each construct that is known to
translate wrongly or not at all, the traps measured when the SQL first ran on Spark."""

from __future__ import annotations

import pytest

from feature_repo import transformations as tx
from ingestion.feature_sql import portability_problems, to_spark
from ingestion.features import feature_statements

pytestmark = pytest.mark.unit

ALL_STATEMENTS = (*tx.FEATURE_STATEMENTS, tx.DERIVED_LABELS_SQL, tx.OBSERVED_LABELS_SQL)


@pytest.mark.parametrize("observed", [False, True], ids=["derived_labels", "observed_labels"])
def test_every_feature_statement_is_portable(observed: bool) -> None:
    assert portability_problems(feature_statements(observed)) == []


def test_every_statement_translates_to_spark() -> None:
    tables = [to_spark(sql)[0] for sql in ALL_STATEMENTS]
    assert tables[-2:] == ["labels", "labels"]
    assert set(tx.FEATURE_TABLES) <= set(tables)
    for sql in ALL_STATEMENTS:
        spark_sql = to_spark(sql)[1]
        assert "$" not in spark_sql, "parameters are written :name in Spark"


def _with(select: str) -> list[str]:
    """The problems of the real statements plus one more that reads them."""
    bad = f"CREATE OR REPLACE TEMP TABLE injected AS {select}"
    return portability_problems((*feature_statements(False), bad))


# (what is injected, a word the problem must say): each one a construct seen to break.
BAD_CONSTRUCTS = {
    "range_calendar": (
        "SELECT t FROM range(TIMESTAMPTZ '2024-01-01', TIMESTAMPTZ '2025-01-01', "
        "INTERVAL 1 MONTH) AS r(t)",
        "range()",
    ),
    "to_days": ("SELECT snapshot_at - to_days(3) AS t FROM population", "ToDays"),
    "date_diff_on_timestamps": (
        "SELECT date_diff('day', statement_date, snapshot_at) AS d FROM population",
        "cast both sides to DATE",
    ),
    "date_diff_by_month": (
        "SELECT date_diff('month', CAST(statement_date AS DATE), CAST(snapshot_at AS DATE)) "
        "AS d FROM population",
        "only days",
    ),
    "integer_plus_decimal_division": (
        "SELECT (contacts_90d + 1.0) / (responsive_90d + 2.0) AS r FROM contact_stats",
        "DECIMAL",
    ),
    "decimal_times_integer": ("SELECT (5 - 2.5) * contacts_90d AS x FROM contact_stats", "DECIMAL"),
    "qualify": (
        "SELECT account_id FROM population "
        "QUALIFY row_number() OVER (PARTITION BY account_id ORDER BY snapshot_at) = 1",
        "QUALIFY",
    ),
    "asof_join": (
        "SELECT p.account_id FROM population p ASOF JOIN payments e "
        "ON p.account_id = e.account_id AND p.snapshot_at >= e.paid_at",
        "ASOF",
    ),
    "aggregate_filter": (
        "SELECT account_id, count(*) FILTER (WHERE days_past_due > 0) AS n "
        "FROM population GROUP BY account_id",
        "FILTER",
    ),
    "unnest": ("SELECT unnest(payment_history) AS m FROM account_payment_velocity", "Explode"),
    "unnest_table": (
        "SELECT m FROM account_payment_velocity, unnest(payment_history) AS u(m)",
        "UNNEST",
    ),
    "duckdb_only_function": (
        "SELECT list_sum(payment_history) AS s FROM account_payment_velocity",
        "LIST_SUM",
    ),
    "star_exclude": ("SELECT * EXCLUDE (customer_id) FROM population", "EXCLUDE"),
    "unknown_parameter": (
        "SELECT account_id FROM population WHERE snapshot_at <= CAST($as_of AS TIMESTAMPTZ)",
        "$as_of",
    ),
    "unknown_column": ("SELECT no_such_column FROM population", "cannot be typed"),
}


@pytest.mark.parametrize("case", BAD_CONSTRUCTS)
def test_a_construct_outside_the_subset_is_refused(case: str) -> None:
    select, says = BAD_CONSTRUCTS[case]
    problems = _with(select)
    assert problems, f"{case} passed the portability check"
    assert all(p.startswith("injected:") for p in problems), problems
    assert any(says.lower() in p.lower() for p in problems), problems


def test_the_same_division_cast_to_double_is_accepted() -> None:
    select = (
        "SELECT (CAST(contacts_90d AS DOUBLE) + 1.0) / (CAST(responsive_90d AS DOUBLE) + 2.0) "
        "AS r, (5 - 2.5) * CAST(contacts_90d AS DOUBLE) AS literal_arithmetic FROM contact_stats"
    )
    assert _with(select) == []


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TEMP TABLE injected AS SELECT 1 AS x",
        "CREATE OR REPLACE TABLE injected AS SELECT 1 AS x",
        "CREATE OR REPLACE TEMP VIEW injected AS SELECT 1 AS x",
    ],
)
def test_only_create_or_replace_temp_table_statements_run(statement: str) -> None:
    problems = portability_problems((statement,))
    assert len(problems) == 1
    assert "CREATE" in problems[0]
