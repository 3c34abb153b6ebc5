-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.fact_order_items` (
  event_id STRING NOT NULL OPTIONS(description="The order status event (fact_order_events.event_id)."),
  day DATE NOT NULL OPTIONS(description="UTC day of the event. Partitioning column."),
  line INT64 NOT NULL OPTIONS(description="The item's position in the event's items (0-based)."),
  order_id STRING NOT NULL OPTIONS(description="The order."),
  product_id STRING NOT NULL OPTIONS(description="The item's product."),
  product_name STRING NOT NULL OPTIONS(description="Its name in this order."),
  quantity INT64 NOT NULL OPTIONS(description="Units."),
  price NUMERIC NOT NULL OPTIONS(description="Unit price."),
  order_date TIMESTAMP NOT NULL OPTIONS(description="When the order was placed."),
  event_time TIMESTAMP NOT NULL OPTIONS(description="The status event's time."),
  built_at TIMESTAMP NOT NULL OPTIONS(description="When the row last changed.")
)
PARTITION BY day
CLUSTER BY product_id, order_id
OPTIONS(description="Order items, flat: one row per item of each order status event (its latest version). Built per UTC day by python -m warehouse daily.");
