-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.order_events` (
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
  order_id STRING NOT NULL OPTIONS(description="Order identifier (a uuid in the brief), shared by all status events of one order."),
  customer_id STRING NOT NULL OPTIONS(description="Customer who placed the order (a uuid in the brief)."),
  order_date TIMESTAMP NOT NULL OPTIONS(description="When the order was placed. The event time when updated_at is absent."),
  status STRING NOT NULL OPTIONS(description="Lifecycle status."),
  items ARRAY<STRUCT<product_id STRING NOT NULL, product_name STRING NOT NULL, quantity INT64 NOT NULL, price NUMERIC NOT NULL>> OPTIONS(description="Line items."),
  shipping_address STRUCT<street STRING NOT NULL, city STRING NOT NULL, country STRING NOT NULL> NOT NULL OPTIONS(description="Where the order ships."),
  total_amount NUMERIC NOT NULL OPTIONS(description="Order total. A float in the brief; stored as NUMERIC rounded half-even to 9 decimals."),
  updated_at TIMESTAMP OPTIONS(description="Project extension: when the order entered this status. The event time when present.")
)
PARTITION BY DATE(event_time)
CLUSTER BY order_id, status, customer_id
OPTIONS(description="Every order status change as its own row (history kept). Partitioned by event date.");
