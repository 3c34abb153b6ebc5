-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.daily_sales` (
  day DATE NOT NULL OPTIONS(description="UTC day of the status events. Partitioning column."),
  country STRING NOT NULL OPTIONS(description="Shipping country."),
  status STRING NOT NULL OPTIONS(description="Order status the orders entered that day."),
  orders INT64 NOT NULL OPTIONS(description="Orders that entered the status that day."),
  revenue NUMERIC NOT NULL OPTIONS(description="Sum of their total_amount."),
  items INT64 NOT NULL OPTIONS(description="Sum of their items' quantities."),
  built_at TIMESTAMP NOT NULL OPTIONS(description="When the row last changed.")
)
PARTITION BY day
CLUSTER BY country, status
OPTIONS(description="Sales by day (UTC, of the status event), shipping country and status: orders, revenue, items. Built by python -m warehouse daily.");
