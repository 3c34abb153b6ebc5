"""Create everything the job needs, idempotently, from the project's own
definitions: the Pub/Sub topic and subscription, the dataset, every table
(schemas/ -> partitioning and clustering), the views (ddl/views/) and the
bucket.

    python -m provision --project local-project --dataset ecommerce --bucket local-bucket
    python -m provision --project local-project --update-schemas   # after a compatible schema change

Tables are created through the API by default: the BigQuery emulator accepts
`PARTITION BY` in DDL but does not keep it. `--tables-via ddl` applies the
committed ddl/tables/*.sql instead (what real BigQuery gets from
run_dataflow.sh). Both come from the same schemas.
"""

from __future__ import annotations

import logging
from pathlib import Path

from common.clients import bigquery_client, publisher_client, storage_client, subscriber_client
from schemas import table_specs
from schemas.bigquery import api_schema, generated_views
from schemas.contract import ALERTS_SUBSCRIPTION, ALERTS_TOPIC


_log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
VIEWS_DIR = ROOT / "ddl" / "views"
TABLES_DIR = ROOT / "ddl" / "tables"
# Views depend on each other: the dedup views first.
# The views generated from the schemas first: the hand-written ones build on the dedup views.
VIEW_ORDER = [Path(name).stem for name in generated_views()] + ["orders_current", "inventory_stock", "alerts_current",
                                                                  "metrics_per_minute_current", "user_sessions_current",
                                                                  "fact_orders_current"]


def substitute(sql: str, project: str, dataset: str) -> str:
    return sql.replace("${PROJECT}", project).replace("${DATASET}", dataset)


def ensure_pubsub(project: str, topic: str, subscription: str, ack_deadline_s: int = 60,
                  retain_acked: bool = True, retention_s: int = 24 * 3600) -> None:
    """Topic and subscription. The subscription retains acked messages, so
    after a crash the job can seek back and replay (dedup absorbs it)."""
    from google.api_core import exceptions as gexc
    from google.protobuf import duration_pb2

    pub = publisher_client()
    topic_path = pub.topic_path(project, topic)
    try:
        pub.create_topic(request={"name": topic_path}, timeout=10)
        _log.info("created topic %s", topic_path)
    except gexc.AlreadyExists:
        pass
    sub = subscriber_client()
    sub_path = sub.subscription_path(project, subscription)
    try:
        sub.create_subscription(request={
            "name": sub_path, "topic": topic_path, "ack_deadline_seconds": ack_deadline_s,
            "retain_acked_messages": retain_acked,
            "message_retention_duration": duration_pb2.Duration(seconds=retention_s),
        }, timeout=10)
        _log.info("created subscription %s", sub_path)
    except gexc.AlreadyExists:
        pass
    finally:
        sub.close()


def ensure_dataset(client, project: str, dataset: str, location: str = "US") -> None:
    from google.cloud import bigquery

    ds = bigquery.Dataset(f"{project}.{dataset}")
    ds.location = location
    client.create_dataset(ds, exists_ok=True, timeout=30)


def ensure_tables_api(client, project: str, dataset: str) -> list[str]:
    from google.cloud import bigquery

    created = []
    for name, spec in table_specs().items():
        table = bigquery.Table(f"{project}.{dataset}.{name}",
                               schema=[bigquery.SchemaField.from_api_repr(c) for c in api_schema(spec)])
        table.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY,
                                                            field=spec.partition_field)
        table.clustering_fields = list(spec.clustering)
        table.description = spec.description
        client.create_table(table, exists_ok=True, timeout=30)
        created.append(name)
    return created


def _merged_fields(existing: list[dict], desired: list[dict]) -> tuple[list[dict], list[str]]:
    """The existing schema (API form) with what `desired` adds: new fields at
    any depth, REQUIRED relaxed to NULLABLE. Nothing is removed or retyped
    (schemas.compat refuses such changes before they get here)."""
    by_name = {f["name"]: f for f in desired}
    merged, changes = [], []
    for f in existing:
        want = by_name.get(f["name"])
        f = dict(f)
        if want:
            if f.get("mode") == "REQUIRED" and want.get("mode") == "NULLABLE":
                f["mode"] = "NULLABLE"
                changes.append(f"{f['name']}: now NULLABLE")
            if f.get("fields") and want.get("fields"):
                f["fields"], inner = _merged_fields(f["fields"], want["fields"])
                changes.extend(f"{f['name']}.{c}" for c in inner)
        merged.append(f)
    known = {f["name"] for f in existing}
    for f in desired:
        if f["name"] not in known:
            merged.append(f)
            changes.append(f"{f['name']}: added")
    return merged, changes


def update_table_schemas(client, project: str, dataset: str, specs: dict | None = None) -> dict[str, list[str]]:
    """Bring existing tables up to the schemas (the compatible changes
    `python -m schemas.compat --check` allows), through the API. Returns
    table -> what changed.

    The BigQuery emulator keeps a table's columns in two places that real
    BigQuery does not distinguish: DDL changes its storage, the API its
    metadata. Locally a new top-level column therefore gets both; a new
    nested field cannot be added there (recreate the local table instead)."""
    import os

    from google.cloud import bigquery

    from schemas.bigquery import _ddl_type_with_mode, columns

    emulator = bool(os.environ.get("BIGQUERY_EMULATOR_HOST"))
    done = {}
    for name, spec in (specs or table_specs()).items():
        table = client.get_table(f"{project}.{dataset}.{name}", timeout=30)
        existing = [f.to_api_repr() for f in table.schema]
        merged, changes = _merged_fields(existing, api_schema(spec))
        if not changes:
            continue
        if emulator:
            known = {f["name"] for f in existing}
            nested = [c for c in changes if "." in c.split(":")[0]]
            if nested:
                raise RuntimeError(f"the BigQuery emulator cannot change nested fields of {name} ({nested}); "
                                   "recreate the local stack's table (python -m localstack down; up)")
            for column in columns(spec):
                if column["name"] not in known:
                    client.query(f"ALTER TABLE `{project}.{dataset}.{name}` ADD COLUMN IF NOT EXISTS "
                                 f"{column['name']} {_ddl_type_with_mode(column)}").result(timeout=60)
        table.schema = [bigquery.SchemaField.from_api_repr(f) for f in merged]
        client.update_table(table, ["schema"], timeout=30)
        done[name] = changes
    return done


def ensure_tables_ddl(client, project: str, dataset: str) -> list[str]:
    created = []
    for path in sorted(TABLES_DIR.glob("*.sql")):
        client.query(substitute(path.read_text(), project, dataset)).result(timeout=120)
        created.append(path.stem)
    return created


def ensure_views(client, project: str, dataset: str) -> list[str]:
    for name in VIEW_ORDER:
        client.query(substitute((VIEWS_DIR / f"{name}.sql").read_text(), project, dataset)).result(timeout=120)
    return list(VIEW_ORDER)


def ensure_bucket(project: str, bucket: str, location: str = "US") -> None:
    from google.api_core import exceptions as gexc

    client = storage_client(project)
    try:
        client.get_bucket(bucket, timeout=10)
    except gexc.NotFound:
        client.create_bucket(bucket, location=location, timeout=10)


def ensure_s3_bucket(bucket: str) -> None:
    """An S3 bucket for history (the local stack's S3 emulator; boto3 follows
    AWS_ENDPOINT_URL_S3)."""
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("s3")
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError:
        client.create_bucket(Bucket=bucket)
        _log.info("created S3 bucket s3://%s", bucket)


def provision(project: str, dataset: str, topic: str, subscription: str, bucket: str | None,
              tables_via: str = "api", location: str = "US") -> dict:
    ensure_pubsub(project, topic, subscription)
    ensure_pubsub(project, ALERTS_TOPIC, ALERTS_SUBSCRIPTION)  # the job's alerts, and a subscription to read them
    bq = bigquery_client(project)
    ensure_dataset(bq, project, dataset, location)
    tables = ensure_tables_api(bq, project, dataset) if tables_via == "api" else ensure_tables_ddl(bq, project, dataset)
    views = ensure_views(bq, project, dataset)
    if bucket:
        ensure_bucket(project, bucket, location)
    return {"topic": topic, "subscription": subscription, "dataset": dataset, "tables": tables, "views": views,
            "bucket": bucket}
