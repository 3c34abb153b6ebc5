-- Data scientists: one row per customer, features for churn or lifetime
-- value models from the profile dimension: recency (days since the last
-- order, as of the newest order in the data), frequency, monetary value, how
-- often the shipping address changed, and the current address.
WITH latest_order AS (
  SELECT MAX(last_order_at) AS as_of FROM `${PROJECT}.${DATASET}.dim_customer`
)
SELECT
  c.customer_id,
  TIMESTAMP_DIFF((SELECT as_of FROM latest_order), MAX(c.last_order_at), HOUR) / 24 AS recency_days,
  MAX(c.order_count) AS frequency,
  MAX(c.lifetime_value) AS monetary,
  COUNT(*) - 1 AS address_changes,
  MIN(c.first_order_at) AS first_order_at,
  MAX(IF(c.is_current, c.city, NULL)) AS current_city,
  MAX(IF(c.is_current, c.country, NULL)) AS current_country
FROM `${PROJECT}.${DATASET}.dim_customer` AS c
GROUP BY c.customer_id
ORDER BY monetary DESC, c.customer_id;
