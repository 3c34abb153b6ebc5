"""Avro schema -> BigQuery schema and DDL.

The same function feeds the API-based provisioning (the emulator drops
`PARTITION BY` from DDL, so tables are created through the API there) and the
DDL files committed under `ddl/tables/` that `run_dataflow.sh` applies to real
BigQuery. A test checks the committed DDL equals what this module renders.
"""

from __future__ import annotations

from schemas import TableSpec, envelope_fields, event_specs, table_columns, table_specs

_PRIMITIVES = {
    "string": "STRING",
    "int": "INT64",
    "long": "INT64",
    "double": "FLOAT64",
    "float": "FLOAT64",
    "boolean": "BOOL",
    "bytes": "BYTES",
}
_FORMATS = {"date-time": "TIMESTAMP", "date": "DATE"}
# DDL type names differ from the API's legacy names for a few types.
_API_NAMES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}


def _unwrap(avro_type):
    """(inner type, nullable) of a field type; ["null", X] is a NULLABLE X."""
    if isinstance(avro_type, list):
        others = [t for t in avro_type if t != "null"]
        if len(others) != 1:
            raise ValueError(f"only [null, X] unions are supported, got {avro_type}")
        return others[0], "null" in avro_type
    return avro_type, False


def _column(field: dict) -> dict:
    """One BigQuery column (API representation, with DDL-style type names)."""
    avro_type, nullable = _unwrap(field["type"])
    mode = "NULLABLE" if nullable else "REQUIRED"
    if isinstance(avro_type, dict) and avro_type["type"] == "array":
        mode = "REPEATED"
        avro_type = avro_type["items"]
        # A format on an array field applies to its items.
        if isinstance(avro_type, dict) and "format" in avro_type:
            field = {**field, "format": avro_type["format"]}
            avro_type = avro_type["type"]
    column = {"name": field["name"], "mode": mode}
    if isinstance(avro_type, dict) and avro_type["type"] == "record":
        column["type"] = "STRUCT"
        column["fields"] = [_column(f) for f in avro_type["fields"]]
    elif isinstance(avro_type, dict) and avro_type["type"] == "enum":
        column["type"] = "STRING"
    elif field.get("bq_type"):
        column["type"] = field["bq_type"]
    elif field.get("format") in _FORMATS:
        column["type"] = _FORMATS[field["format"]]
    else:
        column["type"] = _PRIMITIVES[avro_type]
    if field.get("doc"):
        column["description"] = field["doc"]
    return column


def columns(spec: TableSpec) -> list[dict]:
    return [_column(f) for f in table_columns(spec)]


def api_schema(spec: TableSpec) -> list[dict]:
    """Schema in the REST API's form (`SchemaField.from_api_repr`)."""

    def convert(col):
        out = dict(col)
        out["type"] = _API_NAMES.get(col["type"], col["type"])
        if "fields" in col:
            out["fields"] = [convert(c) for c in col["fields"]]
        return out

    return [convert(c) for c in columns(spec)]


def _ddl_type(col: dict) -> str:
    if col["type"] == "STRUCT":
        inner = ", ".join(f"{c['name']} {_ddl_type_with_mode(c)}" for c in col["fields"])
        return f"STRUCT<{inner}>"
    return col["type"]


def _ddl_type_with_mode(col: dict) -> str:
    base = _ddl_type(col)
    if col["mode"] == "REPEATED":
        return f"ARRAY<{base}>"
    # NOT NULL is not allowed on fields nested in an ARRAY's STRUCT in every
    # context, but is accepted inside STRUCT columns; keep it for top level and
    # plain STRUCT members.
    return f"{base} NOT NULL" if col["mode"] == "REQUIRED" else base


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_ddl(spec: TableSpec) -> str:
    """CREATE TABLE IF NOT EXISTS for the table; ${PROJECT}/${DATASET} are
    substituted by whoever applies it (provisioning, run_dataflow.sh)."""
    lines = []
    cols = columns(spec)
    for i, col in enumerate(cols):
        sep = "," if i < len(cols) - 1 else ""
        desc = f" OPTIONS(description={_quote(col['description'])})" if col.get("description") else ""
        lines.append(f"  {col['name']} {_ddl_type_with_mode(col)}{desc}{sep}")
    body = "\n".join(lines)
    # A DATE column partitions as it is; a TIMESTAMP one by its date.
    partition_type = next(c["type"] for c in cols if c["name"] == spec.partition_field)
    partition = spec.partition_field if partition_type == "DATE" else f"DATE({spec.partition_field})"
    return (
        f"-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.\n"
        f"CREATE TABLE IF NOT EXISTS `${{PROJECT}}.${{DATASET}}.{spec.name}` (\n{body}\n)\n"
        f"PARTITION BY {partition}\n"
        f"CLUSTER BY {', '.join(spec.clustering)}\n"
        f"OPTIONS(description={_quote(spec.description)});\n"
    )


def all_ddl() -> dict[str, str]:
    """File name under ddl/tables/ -> its content."""
    return {f"{name}.sql": render_ddl(spec) for name, spec in table_specs().items()}


# -- views that follow from the event schemas (one per event type, and unions) --
_GENERATED = "-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.\n"


def entity_sql(spec: TableSpec) -> str:
    """The SQL of an event's entity key (schemas.contract.entity_key)."""
    entity = spec.avro.get("entity", "event")
    if entity == "event":
        return "event_id"
    if len(entity) == 1:
        return f"CAST({entity[0]} AS STRING)"
    return "CONCAT(" + ", ':', ".join(f"CAST({name} AS STRING)" for name in entity) + ")"


def render_dedup_view(spec: TableSpec) -> str:
    table = f"`${{PROJECT}}.${{DATASET}}.{spec.name}`"
    return (
        _GENERATED
        + "-- One row per event_id: its latest version, first copy ingested. The table\n"
        "-- keeps every version (the event as first sent, then corrections,\n"
        "-- invalidations, deletions, ordered by changed_at); an event whose latest\n"
        "-- version is an invalidation is hidden, and so is every event of an entity\n"
        "-- a deletion removed. Streaming inserts dedup by insertId only on a\n"
        "-- best-effort basis, and a redelivery after the job's dedup horizon passes\n"
        "-- the job, so exact dedup happens here at query time. The CTEs are named\n"
        "-- after the table: a query reading two of these views stays unambiguous\n"
        "-- where views are inlined by name (the BigQuery emulator).\n"
        f"CREATE OR REPLACE VIEW `${{PROJECT}}.${{DATASET}}.{spec.name}_dedup` AS\n"
        f"WITH {spec.name}_latest AS (\n"
        "  SELECT *\n"
        f"  FROM {table}\n"
        "  WHERE TRUE\n"
        "  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id\n"
        "                             ORDER BY changed_at DESC NULLS LAST, ingest_time, publish_time) = 1\n"
        "),\n"
        f"{spec.name}_deleted AS (\n"
        f"  SELECT DISTINCT {entity_sql(spec)} AS entity\n"
        f"  FROM {table}\n"
        "  WHERE change_type = 'deletion'\n"
        ")\n"
        "SELECT *\n"
        f"FROM {spec.name}_latest\n"
        "WHERE IFNULL(change_type, '') NOT IN ('invalidation', 'deletion')\n"
        f"  AND {entity_sql(spec)} NOT IN (SELECT entity FROM {spec.name}_deleted);\n"
    )


def render_union_view(suffix: str) -> str:
    """`all_events<suffix>`: the envelope columns of every event table (or of
    every dedup view, suffix "_dedup") in one relation."""
    envelope = ", ".join(f["name"] for f in envelope_fields())
    which = " (deduplicated views)" if suffix else ""
    selects = "\nUNION ALL\n".join(
        f"SELECT '{event_type}' AS event_type, {envelope}\nFROM `${{PROJECT}}.${{DATASET}}.{spec.name}{suffix}`"
        for event_type, spec in event_specs().items())
    return (
        _GENERATED
        + f"-- Envelope columns of every event table{which} in one relation,\n"
        "-- for reconciliation and cross-type queries.\n"
        f"CREATE OR REPLACE VIEW `${{PROJECT}}.${{DATASET}}.all_events{suffix}` AS\n{selects};\n"
    )


def generated_views() -> dict[str, str]:
    """File name under ddl/views/ -> its content, in creation order. The
    other views there (current order status, stock) are written by hand."""
    views = {f"{spec.name}_dedup.sql": render_dedup_view(spec) for spec in event_specs().values()}
    views["all_events.sql"] = render_union_view("")
    views["all_events_dedup.sql"] = render_union_view("_dedup")
    return views
