"""Event and table schemas: the single source of truth.

The `.avsc` files in this package are Avro record schemas. Avro (checked with
fastavro) gives the structure and types; a few extra keys that Avro ignores
carry the rest of what this project needs to know about a field or a table:

* ``format``: ``date-time`` (RFC 3339; BigQuery TIMESTAMP);
* ``minimum`` / ``maximum`` for numbers (only where the brief sets a range),
  ``minLength`` for identity fields;
* ``bq_type`` to override the BigQuery type (money is NUMERIC, extra is JSON);
* ``extension``: a field the project adds to the brief's event (optional);
* on an event record: ``event_type``, ``event_time_fields`` (the first one
  present is the event time), ``identity`` (fields that identify an event, or
  ``content``) and a ``bigquery`` block (table, clustering, description).

From these files come the contract (`schemas.contract`: validation, canonical
form, identity, rows and file lines), the BigQuery table schemas used by
provisioning, and the committed DDL in `ddl/tables/` (`python -m schemas.ddl
--check` proves they agree). `schemas/released/` holds the last released
version of each event schema; `python -m schemas.compat --check` refuses an
incompatible change.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import fastavro

SCHEMA_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class TableSpec:
    """A BigQuery table described by an Avro record schema."""

    name: str
    avro: dict
    partition_field: str
    clustering: tuple[str, ...]
    description: str
    event_type: str | None = None
    event_time_fields: tuple[str, ...] = ()
    user_field: str | None = None  # the field naming the person acting (users and customers share ids)
    row_key: str | None = None  # the column that names a row (its insertId's source): what a MERGE matches on

    @property
    def payload_fields(self) -> list[dict]:
        return self.avro["fields"]

    @functools.cached_property
    def parsed(self):
        """fastavro's parsed form of the payload schema (for validation)."""
        return fastavro.parse_schema(_strip_annotations(self.avro))


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _strip_annotations(schema):
    """Return the schema without the project's extra keys (fastavro ignores
    most unknown keys, but keeping the parsed schema pure Avro is cheap)."""
    extra = {"format", "minimum", "maximum", "minLength", "bq_type", "extension",
             "event_type", "event_time_fields", "identity", "entity", "bigquery", "user_field"}
    if isinstance(schema, dict):
        return {k: _strip_annotations(v) for k, v in schema.items() if k not in extra}
    if isinstance(schema, list):
        return [_strip_annotations(v) for v in schema]
    return schema


@functools.lru_cache(maxsize=None)
def envelope_fields() -> tuple[dict, ...]:
    return tuple(_load(SCHEMA_DIR / "tables" / "event_envelope.avsc")["fields"])


def event_spec_from(avro: dict) -> TableSpec:
    bq = avro["bigquery"]
    return TableSpec(
        name=bq["table"],
        avro=avro,
        partition_field="event_time",
        clustering=tuple(bq["clustering"]),
        description=bq["description"],
        event_type=avro["event_type"],
        event_time_fields=tuple(avro["event_time_fields"]),
        user_field=avro.get("user_field"),
        row_key="event_id",  # one row per identity in an event table's dedup view
    )


@functools.lru_cache(maxsize=None)
def event_specs() -> dict[str, TableSpec]:
    """Event type name -> its table spec, in a stable order."""
    specs = {}
    for path in sorted((SCHEMA_DIR / "events").glob("*.avsc")):
        avro = _load(path)
        specs[avro["event_type"]] = event_spec_from(avro)
    return specs


@functools.lru_cache(maxsize=None)
def table_specs() -> dict[str, TableSpec]:
    """Every table provisioned by the project, by table name."""
    tables = {spec.name: spec for spec in event_specs().values()}
    for path in sorted((SCHEMA_DIR / "tables").glob("*.avsc")):
        avro = _load(path)
        if "bigquery" not in avro:
            continue  # the envelope is a fragment, not a table
        bq = avro["bigquery"]
        tables[bq["table"]] = TableSpec(
            name=bq["table"],
            avro=avro,
            partition_field=bq["partition_field"],
            clustering=tuple(bq["clustering"]),
            description=bq["description"],
            row_key=bq.get("row_key"),
        )
    return tables


def event_types() -> tuple[str, ...]:
    return tuple(event_specs())


def table_columns(spec: TableSpec) -> list[dict]:
    """Avro fields of the table as stored: envelope first for event tables."""
    if spec.event_type:
        return list(envelope_fields()) + list(spec.payload_fields)
    return list(spec.payload_fields)


DEAD_LETTER_TABLE = "dead_letter"
CONFLICTS_TABLE = "conflicts"
FILES_WRITTEN_TABLE = "files_written"
LEDGER_TABLE = "producer_ledger"
ALERTS_TABLE = "alerts"
METRICS_TABLE = "metrics_per_minute"
SESSIONS_TABLE = "user_sessions"
ERASED_SUBJECTS_TABLE = "erased_subjects"  # GDPR: hashes the job suppresses (python -m gdpr)
ERASURE_LOG_TABLE = "erasure_log"
STAGING_MARK = "__backfill_"  # <table>__backfill_<run>: a backfill's staging table (backfill/staging.py)


def staging_table(table: str, run_id: str) -> str:
    """The staging table of `table` for one backfill run."""
    import re

    suffix = re.sub(r"[^a-z0-9_]", "_", run_id.lower())[:64]
    if not suffix.strip("_"):
        raise ValueError("a backfill run id must hold a letter or a digit")
    return f"{table}{STAGING_MARK}{suffix}"
