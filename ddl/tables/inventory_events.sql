-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.inventory_events` (
  event_id STRING NOT NULL OPTIONS(description="Producer's unique id of the logical event (Pub/Sub attribute event_id), or sha256 of the content when absent. insertId of the streaming insert."),
  event_time TIMESTAMP NOT NULL OPTIONS(description="Event time taken from the payload. Partitioning column."),
  publish_time TIMESTAMP OPTIONS(description="Pub/Sub publish time of the copy that was kept."),
  ingest_time TIMESTAMP NOT NULL OPTIONS(description="When the pipeline processed the event (processing time)."),
  source STRING NOT NULL OPTIONS(description="stream or backfill: which path wrote the row (lineage)."),
  inventory_id STRING NOT NULL OPTIONS(description="Identifier of this stock movement."),
  product_id STRING NOT NULL OPTIONS(description="Product whose stock changed."),
  warehouse_id STRING NOT NULL OPTIONS(description="Warehouse holding the stock."),
  quantity_change INT64 NOT NULL OPTIONS(description="Units added (positive) or removed (negative)."),
  reason STRING NOT NULL OPTIONS(description="Why the stock changed."),
  timestamp TIMESTAMP NOT NULL OPTIONS(description="When the stock changed: the event time (RFC 3339).")
)
PARTITION BY DATE(event_time)
CLUSTER BY product_id, warehouse_id, reason
OPTIONS(description="Every stock movement as its own row. Stock per product and warehouse is their sum (view inventory_stock).");
