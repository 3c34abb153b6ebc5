-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.inventory_events` (
  event_id STRING NOT NULL OPTIONS(description="Identity of the logical event (schemas/contract.py): an explicit event_id when the producer sends one, else inventory_id, order_id:status, or sha256:<content hash> for user activity."),
  event_time TIMESTAMP NOT NULL OPTIONS(description="Event time taken from the payload (UTC). Partitioning column."),
  content_hash STRING NOT NULL OPTIONS(description="Hash of the event's canonical content (schemas/contract.py content_hash). Two copies with the same event_id and different content_hash are a conflict."),
  extra JSON OPTIONS(description="Fields the schema does not know yet (schema evolution), at their place in the event; NULL when none."),
  publish_time TIMESTAMP OPTIONS(description="Pub/Sub publish time of the copy that was kept."),
  ingest_time TIMESTAMP NOT NULL OPTIONS(description="When the pipeline processed the event (processing time)."),
  source STRING NOT NULL OPTIONS(description="stream or backfill: which path wrote the row (lineage)."),
  change_type STRING OPTIONS(description="NULL for an event as first sent; correction, invalidation or deletion for a change of it (seed 002). The *_dedup views show each event's latest version, hide invalidated events and the events of deleted entities; this table keeps every version."),
  changed_at TIMESTAMP OPTIONS(description="When the producer made the change: the order of an event's versions. NULL for the event as first sent."),
  change_reason STRING OPTIONS(description="Why, as the producer said (optional)."),
  inventory_id STRING NOT NULL OPTIONS(description="Identifier of this stock movement (a uuid in the brief)."),
  product_id STRING NOT NULL OPTIONS(description="Product whose stock changed (a uuid in the brief)."),
  warehouse_id STRING NOT NULL OPTIONS(description="Warehouse holding the stock (a uuid in the brief)."),
  quantity_change INT64 NOT NULL OPTIONS(description="Units added (positive) or removed (negative), -100 to 100."),
  reason STRING NOT NULL OPTIONS(description="Why the stock changed."),
  timestamp TIMESTAMP NOT NULL OPTIONS(description="When the stock changed: the event time.")
)
PARTITION BY DATE(event_time)
CLUSTER BY product_id, warehouse_id, reason
OPTIONS(description="Every stock movement as its own row. Stock per product and warehouse is their sum (view inventory_stock).");
