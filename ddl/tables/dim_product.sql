-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.dim_product` (
  product_id STRING NOT NULL OPTIONS(description="The product (order items and inventory events)."),
  product_name STRING OPTIONS(description="Name in its latest order; NULL for a product never ordered."),
  last_price NUMERIC OPTIONS(description="Unit price in its latest order."),
  units_sold INT64 NOT NULL OPTIONS(description="Units in all orders (by order, quarantined orders excluded)."),
  stock INT64 NOT NULL OPTIONS(description="Sum of every inventory movement over all warehouses."),
  warehouses INT64 NOT NULL OPTIONS(description="Warehouses with a movement of it."),
  first_seen_at TIMESTAMP NOT NULL OPTIONS(description="Its first order or movement (UTC). Partitioning column."),
  last_seen_at TIMESTAMP NOT NULL OPTIONS(description="Its latest order or movement."),
  built_at TIMESTAMP NOT NULL OPTIONS(description="When the row last changed.")
)
PARTITION BY DATE(first_seen_at)
CLUSTER BY product_id
OPTIONS(description="Products as they stand (SCD type 1): last name and price sold at, units sold, stock over all warehouses. Built by python -m warehouse daily.");
