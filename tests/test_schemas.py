"""The schemas are the single source of truth: DDL, BigQuery schemas and
validation all come from them."""

from schemas import event_specs, table_specs
from schemas.bigquery import api_schema, render_ddl
from schemas.ddl import DDL_DIR, stale_files


def test_committed_ddl_equals_generated():
    assert stale_files() == [], "run python -m schemas.ddl --write"
    for name, spec in table_specs().items():
        assert (DDL_DIR / f"{name}.sql").read_text() == render_ddl(spec)


def test_every_event_type_has_time_fields_identity_and_clustering():
    assert set(event_specs()) == {"order", "inventory", "user_activity"}
    for spec in event_specs().values():
        fields = {f["name"]: f for f in spec.payload_fields}
        assert all(fields[name].get("format") == "date-time" for name in spec.event_time_fields)
        identity = spec.avro["identity"]
        assert identity == "content" or all(name in fields for name in identity)
        columns = {c["name"] for c in api_schema(spec)}
        assert set(spec.clustering) <= columns
        assert {"event_id", "event_time", "content_hash", "extra", "publish_time", "ingest_time", "source"} <= columns


def test_schemas_are_valid_avro():
    import fastavro

    for spec in table_specs().values():
        assert spec.parsed  # fastavro parses every record schema (annotations stripped)
        fastavro.parse_schema(spec.parsed)


def test_bigquery_types_follow_the_avro_annotations():
    cols = {c["name"]: c for c in api_schema(event_specs()["order"])}
    assert cols["event_time"]["type"] == "TIMESTAMP" and cols["event_time"]["mode"] == "REQUIRED"
    assert cols["publish_time"]["mode"] == "NULLABLE"
    assert cols["status"]["type"] == "STRING"  # enum
    assert cols["total_amount"]["type"] == "NUMERIC"  # bq_type override for money
    assert cols["extra"]["type"] == "JSON" and cols["extra"]["mode"] == "NULLABLE"
    assert cols["updated_at"]["mode"] == "NULLABLE"  # a project extension, optional
    assert cols["items"]["mode"] == "REPEATED" and cols["items"]["type"] == "RECORD"
    assert {f["name"]: f["type"] for f in cols["items"]["fields"]}["quantity"] == "INTEGER"
    assert cols["shipping_address"]["type"] == "RECORD"
    ledger = {c["name"]: c for c in api_schema(table_specs()["producer_ledger"])}
    assert ledger["publish_times"]["type"] == "TIMESTAMP" and ledger["publish_times"]["mode"] == "REPEATED"


def test_ddl_partitions_by_event_date_and_clusters():
    ddl = render_ddl(event_specs()["inventory"])
    assert "PARTITION BY DATE(event_time)" in ddl
    assert "CLUSTER BY product_id, warehouse_id, reason" in ddl
    assert "`${PROJECT}.${DATASET}.inventory_events`" in ddl
