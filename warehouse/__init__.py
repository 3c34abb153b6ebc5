"""The daily warehouse layer (seed 003: customer profiles as SCD type 2,
daily business reports, data-quality quarantine), built in BigQuery from the
event tables the streaming job and the backfill write.

Every step is one SQL file under sql/warehouse/: a MERGE for one UTC day,
the parameter `@day`. Each is idempotent (re-running a day changes nothing,
not even built_at) and the order of STEPS matters: the flat facts first
(fact_order_events, fact_order_items: each order event's latest version from
order_events_dedup, address and items as plain columns), then the quality
rules, then the dimensions and daily tables, which read orders through the
view fact_orders_current that leaves out what the rules excluded.
Late data, corrections, deletions, a backfill: `python -m warehouse daily
--since T` rebuilds every day from the earliest event date of the rows
that arrived since T to the newest one (running values such as stock carry
from day to day); the facts rebuild whole orders, the dimensions whole
histories of the customers and products a day touched.

The same files make the nightly scheduled query (run_dataflow.sh provision;
its name and schedule in deploy/scheduled_queries/warehouse_daily.json): one
script that does what --since does for the last 48 hours, a transaction per
day.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = ROOT / "sql" / "warehouse"

# (table, what it holds): the order they are built in.
STEPS = (
    ("fact_order_events", "order status events, flat"),
    ("fact_order_items", "order items, flat"),
    ("dq_quarantine", "events the quality rules caught"),
    ("dq_daily_report", "per day and rule: checked, quarantined"),
    ("dim_customer", "customer profiles, SCD type 2"),
    ("dim_product", "products as they stand"),
    ("daily_sales", "per day, country, status"),
    ("daily_product", "per day and product"),
    ("daily_user_behaviour", "per day and platform"),
)
DAILY_TABLES = tuple(table for table, _ in STEPS)
# The column each table's rows are dated by (the demo's date ranges).
DATE_COLUMN = {"dim_customer": "valid_from", "dim_product": "first_seen_at"}
# Views the steps read that the warehouse provisions with the tables.
VIEWS = ("fact_orders_current",)


def step_sql(table: str, project: str, dataset: str) -> str:
    """The step's SQL with the project and dataset filled in."""
    from provision import substitute

    return substitute((SQL_DIR / f"{table}.sql").read_text(), project, dataset)


PLAN_SQL = SQL_DIR / "plan" / "affected_days.sql"
# How far back the nightly run looks for arrived rows: two days, so a failed
# night is made good by the next (a rebuild is idempotent).
SCHEDULED_LOOKBACK = "TIMESTAMP_SUB(@run_time, INTERVAL 48 HOUR)"


def scheduled_script() -> str:
    """Every step as one BigQuery script, for a scheduled query: for each day
    from the earliest event date of the rows that arrived in the last two
    days to the newest event date (plan/affected_days.sql), the steps in
    order in one transaction. ${PROJECT}/${DATASET} are filled in when the
    query is created (run_dataflow.sh provision)."""
    plan = re.sub(r"@since\b", SCHEDULED_LOOKBACK, _without_comments(PLAN_SQL.read_text()).rstrip().rstrip(";"))
    parts = ["-- Generated from sql/warehouse/ by python -m warehouse scheduled-queries.\n"
             "-- Rebuilds every day that rows arrived for in the last 48 hours, and the days after it.\n"
             "FOR build IN (\n"
             "  SELECT day\n"
             f"  FROM ({plan}) AS plan,\n"
             "    UNNEST(GENERATE_DATE_ARRAY(plan.first_day, GREATEST(plan.first_day, plan.last_day))) AS day\n"
             "  ORDER BY day\n"
             ") DO\n"
             "BEGIN TRANSACTION;\n"]
    for table, what in STEPS:
        text = (SQL_DIR / f"{table}.sql").read_text().rstrip().rstrip(";")
        parts.append(f"-- {table}: {what}\n" + re.sub(r"@day\b", "build.day", text) + ";\n")
    parts.append("COMMIT TRANSACTION;\nEND FOR;\n")
    return "\n".join(parts)


def _without_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


def affected_days(client, project: str, dataset: str, since) -> list[date]:
    """The days to rebuild for the rows that arrived since `since` (a
    datetime): plan/affected_days.sql. Empty when nothing arrived."""
    from datetime import timedelta

    from provision import substitute
    from reconcile.checks import query

    row = query(client, substitute(PLAN_SQL.read_text(), project, dataset), {"since": since})[0]
    if row["first_day"] is None:
        return []
    first, last = row["first_day"], max(row["first_day"], row["last_day"])
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def run_day(client, project: str, dataset: str, day: date, on_step=None) -> list[dict]:
    """Every step for one day, in order. Returns [{table, affected rows,
    seconds}]; `on_step(result)` is called after each."""
    import time

    from google.cloud import bigquery

    results = []
    for table, _ in STEPS:
        started = time.monotonic()
        config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("day", "DATE", day)])
        job = client.query(step_sql(table, project, dataset), job_config=config, job_retry=None, timeout=60)
        job.result(timeout=300)
        result = {"day": day.isoformat(), "table": table, "changed": job.num_dml_affected_rows,
                  "seconds": round(time.monotonic() - started, 2)}
        results.append(result)
        if on_step:
            on_step(result)
    return results


def summary(client, project: str, dataset: str) -> list[dict]:
    """Per warehouse table: rows and the range of days they cover."""
    from reconcile.checks import query

    out = []
    for table in DAILY_TABLES:
        column = DATE_COLUMN.get(table, "day")
        row = query(client, f"SELECT COUNT(*) AS n, MIN({column}) AS first, MAX({column}) AS last "
                            f"FROM `{project}.{dataset}.{table}`")[0]
        first, last = (_as_date(row["first"]), _as_date(row["last"]))
        out.append({"table": table, "rows": row["n"], "first": first, "last": last})
    return out


def summary_line(row: dict) -> str:
    """One line of `summary`: table, rows, the days they cover."""
    span = f"{row['first']} .. {row['last']}" if row["rows"] else "empty"
    return f"{row['table']:<22} {row['rows']:>7} rows  {span}"


def _as_date(value):
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).date()
    return value
