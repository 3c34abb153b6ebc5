-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.daily_product` (
  day DATE NOT NULL OPTIONS(description="UTC day. Partitioning column."),
  product_id STRING NOT NULL OPTIONS(description="The product."),
  units_sold INT64 NOT NULL OPTIONS(description="Units in orders placed that day (order_date)."),
  sales_amount NUMERIC NOT NULL OPTIONS(description="Sum of quantity x price of those units."),
  restocked INT64 NOT NULL OPTIONS(description="Sum of quantity_change of restock movements that day."),
  sold INT64 NOT NULL OPTIONS(description="Sum of quantity_change of sale movements (negative)."),
  returned INT64 NOT NULL OPTIONS(description="Sum of quantity_change of return movements."),
  damaged INT64 NOT NULL OPTIONS(description="Sum of quantity_change of damage movements (negative)."),
  net_change INT64 NOT NULL OPTIONS(description="Sum of every movement that day."),
  stock_end_of_day INT64 NOT NULL OPTIONS(description="Sum of every movement up to the end of the day, all warehouses."),
  built_at TIMESTAMP NOT NULL OPTIONS(description="When the row last changed.")
)
PARTITION BY day
CLUSTER BY product_id
OPTIONS(description="Per day (UTC) and product: units sold (orders placed that day), stock movements by reason, stock at the end of the day. Built by python -m warehouse daily.");
