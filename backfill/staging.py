"""Staging tables and the MERGE that makes a backfill idempotent.

The backfill's graph writes every row (events, dead letters, conflicts,
files written) to a staging table of its run, `<table>__backfill_<run>`,
with the real table's schema. Once the graph has finished, one MERGE per
table inserts the staged rows whose key (the schema's `row_key`: the event
id, the dead letter's, conflict's or file's id) the real table does not hold
yet, each key once:

* an event the stream already delivered, or an earlier backfill loaded, is
  not inserted again (and its file line exists: the folder was read back);
* running the same backfill twice inserts nothing the second time;
* a crash before the MERGE leaves the real tables untouched: run again.

MERGE runs on real BigQuery as on the emulator; the staging tables are
dropped afterwards (`--keep_staging` keeps them to look at).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from schemas import CONFLICTS_TABLE, DEAD_LETTER_TABLE, FILES_WRITTEN_TABLE, event_specs, staging_table, table_specs
from schemas.bigquery import api_schema

_log = logging.getLogger(__name__)
staging_name = staging_table
STAGING_EXPIRY = timedelta(days=7)  # forgotten staging tables (a crashed run) go away by themselves


def staged_tables() -> list[str]:
    """The tables a backfill writes."""
    return [spec.name for spec in event_specs().values()] + [DEAD_LETTER_TABLE, CONFLICTS_TABLE, FILES_WRITTEN_TABLE]


def create_staging(client, project: str, dataset: str, run_id: str) -> list[str]:
    """One staging table per staged table, with its schema (kept if it exists:
    a run repeated under the same id appends, and the MERGE takes each key
    once)."""
    from google.cloud import bigquery

    names = []
    for table in staged_tables():
        spec = table_specs()[table]
        staging = bigquery.Table(f"{project}.{dataset}.{staging_name(table, run_id)}",
                                 schema=[bigquery.SchemaField.from_api_repr(c) for c in api_schema(spec)])
        staging.expires = datetime.now(timezone.utc) + STAGING_EXPIRY
        staging.description = f"Staging of {table} for backfill run {run_id} (python -m backfill); merged, then dropped."
        client.create_table(staging, exists_ok=True, timeout=30)
        names.append(staging.table_id)
    return names


def merge_sql(project: str, dataset: str, table: str, run_id: str) -> str:
    """Insert the staged rows whose key the table does not hold, each key once."""
    spec = table_specs()[table]
    key = spec.row_key
    columns = [c["name"] for c in api_schema(spec)]
    target, staging = f"`{project}.{dataset}.{table}`", f"`{project}.{dataset}.{staging_name(table, run_id)}`"
    return (f"MERGE {target} AS t\n"
            f"USING (\n  SELECT * FROM {staging}\n  WHERE TRUE\n"
            f"  QUALIFY ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY {key}) = 1\n) AS s\n"
            f"ON t.{key} = s.{key}\n"
            f"WHEN NOT MATCHED THEN\n"
            f"  INSERT ({', '.join(columns)})\n"
            f"  VALUES ({', '.join('s.' + c for c in columns)})")


def _count(client, sql: str) -> int:
    return list(client.query(sql).result(timeout=300))[0][0]


def merge_staged(client, project: str, dataset: str, run_id: str) -> dict[str, dict]:
    """MERGE every staging table into its table; returns table -> {staged:
    distinct keys staged, inserted: new rows}."""
    out = {}
    for table in staged_tables():
        key = table_specs()[table].row_key
        target, staging = f"`{project}.{dataset}.{table}`", f"`{project}.{dataset}.{staging_name(table, run_id)}`"
        staged = _count(client, f"SELECT COUNT(DISTINCT {key}) FROM {staging}")
        new = _count(client, f"SELECT COUNT(DISTINCT {key}) FROM {staging} WHERE {key} NOT IN "
                             f"(SELECT {key} FROM {target})") if staged else 0
        if new:
            client.query(merge_sql(project, dataset, table, run_id)).result(timeout=600)
        out[table] = {"staged": staged, "inserted": new}
        _log.info("merged %s into %s: %d staged, %d new", staging_name(table, run_id), table, staged, new)
    return out


def drop_staging(client, project: str, dataset: str, run_id: str) -> None:
    for table in staged_tables():
        client.delete_table(f"{project}.{dataset}.{staging_name(table, run_id)}", not_found_ok=True, timeout=30)
