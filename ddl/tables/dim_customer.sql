-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.dim_customer` (
  customer_key STRING NOT NULL OPTIONS(description="Surrogate key: hash of (customer_id, valid_from)."),
  customer_id STRING NOT NULL OPTIONS(description="The customer (order.customer_id; the same id space as user_activity.user_id)."),
  city STRING NOT NULL OPTIONS(description="Shipping city of the version's orders."),
  country STRING NOT NULL OPTIONS(description="Shipping country of the version's orders."),
  valid_from TIMESTAMP NOT NULL OPTIONS(description="order_date of the first order shipped to this address (UTC). Partitioning column."),
  valid_to TIMESTAMP OPTIONS(description="valid_from of the next version; NULL for the current one."),
  is_current BOOL NOT NULL OPTIONS(description="The customer's latest version."),
  first_order_at TIMESTAMP NOT NULL OPTIONS(description="The customer's first order ever (the same on every version)."),
  last_order_at TIMESTAMP NOT NULL OPTIONS(description="The last order of this version."),
  orders_in_version INT64 NOT NULL OPTIONS(description="Orders placed under this version."),
  order_count INT64 NOT NULL OPTIONS(description="Orders placed up to the end of this version (cumulative)."),
  lifetime_value NUMERIC NOT NULL OPTIONS(description="Sum of total_amount of those orders (cumulative, quarantined orders excluded)."),
  built_at TIMESTAMP NOT NULL OPTIONS(description="When the row last changed (a re-run that changes nothing leaves it).")
)
PARTITION BY DATE(valid_from)
CLUSTER BY customer_id, is_current
OPTIONS(description="Customer profiles, SCD type 2 (one row per address version; is_current marks the latest). Built by python -m warehouse daily.");
