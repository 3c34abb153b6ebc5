-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.order_events` (
  event_id STRING NOT NULL OPTIONS(description="Producer's unique id of the logical event (Pub/Sub attribute event_id), or sha256 of the content when absent. insertId of the streaming insert."),
  event_time TIMESTAMP NOT NULL OPTIONS(description="Event time taken from the payload. Partitioning column."),
  publish_time TIMESTAMP OPTIONS(description="Pub/Sub publish time of the copy that was kept."),
  ingest_time TIMESTAMP NOT NULL OPTIONS(description="When the pipeline processed the event (processing time)."),
  source STRING NOT NULL OPTIONS(description="stream or backfill: which path wrote the row (lineage)."),
  order_id STRING NOT NULL OPTIONS(description="Order identifier, shared by all status events of one order."),
  customer_id STRING NOT NULL OPTIONS(description="Customer who placed the order."),
  order_date TIMESTAMP NOT NULL OPTIONS(description="When the order was placed (RFC 3339)."),
  updated_at TIMESTAMP NOT NULL OPTIONS(description="When the order entered this status: the event time (RFC 3339)."),
  status STRING NOT NULL OPTIONS(description="Lifecycle status."),
  items ARRAY<STRUCT<product_id STRING NOT NULL, product_name STRING NOT NULL, quantity INT64 NOT NULL, price NUMERIC NOT NULL>> OPTIONS(description="Line items."),
  shipping_address STRUCT<street STRING NOT NULL, city STRING NOT NULL, country STRING NOT NULL> NOT NULL OPTIONS(description="Where the order ships."),
  total_amount NUMERIC NOT NULL OPTIONS(description="Order total (sum of quantity x price).")
)
PARTITION BY DATE(event_time)
CLUSTER BY order_id, status, customer_id
OPTIONS(description="Every order status change as its own row (history kept). Partitioned by event date.");
