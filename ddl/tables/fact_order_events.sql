-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.fact_order_events` (
  event_id STRING NOT NULL OPTIONS(description="The event's identity (order_id:status)."),
  day DATE NOT NULL OPTIONS(description="UTC day of event_time. Partitioning column."),
  order_id STRING NOT NULL OPTIONS(description="The order."),
  customer_id STRING NOT NULL OPTIONS(description="Its customer."),
  status STRING NOT NULL OPTIONS(description="The status the order entered."),
  status_rank INT64 NOT NULL OPTIONS(description="1 pending, 2 processing, 3 shipped, 4 delivered."),
  event_time TIMESTAMP NOT NULL OPTIONS(description="When it entered the status."),
  order_date TIMESTAMP NOT NULL OPTIONS(description="When the order was placed."),
  city STRING NOT NULL OPTIONS(description="shipping_address.city."),
  country STRING NOT NULL OPTIONS(description="shipping_address.country."),
  total_amount NUMERIC NOT NULL OPTIONS(description="The order's total_amount."),
  items_total NUMERIC OPTIONS(description="Sum of quantity x price of its items (NULL without items)."),
  units INT64 NOT NULL OPTIONS(description="Sum of its items' quantities."),
  built_at TIMESTAMP NOT NULL OPTIONS(description="When the row last changed.")
)
PARTITION BY day
CLUSTER BY customer_id, order_id
OPTIONS(description="Order status events, flat: one row per event (its latest version), address and item sums as columns. Built per UTC day by python -m warehouse daily.");
