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
Late data: re-run the day of its event time (`python -m warehouse daily
--date D`); the dimensions rebuild whole histories of the customers and
products that day touched.

The same files make the nightly scheduled query (run_dataflow.sh provision;
its name and schedule in deploy/scheduled_queries/warehouse_daily.json): one
script, the steps in order, `@day` the day before the run's @run_date.
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


def scheduled_script() -> str:
    """Every step as one BigQuery script, for a scheduled query: the steps
    run in order in one job, for the day before the run's @run_date (a
    nightly schedule builds yesterday). ${PROJECT}/${DATASET} are filled in
    when the query is created (run_dataflow.sh provision)."""
    parts = ["-- Generated from sql/warehouse/ by python -m warehouse scheduled-queries.\n"
             "-- The day each statement builds is the day before the run date of the schedule.\n"]
    for table, what in STEPS:
        text = (SQL_DIR / f"{table}.sql").read_text().rstrip().rstrip(";")
        parts.append(f"-- {table}: {what}\n" + re.sub(r"@day\b", "DATE_SUB(@run_date, INTERVAL 1 DAY)", text) + ";\n")
    return "\n".join(parts)


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


def _as_date(value):
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).date()
    return value
