-- Analysts: each order with the customer's profile as it was when the order
-- was placed (a point-in-time join on the SCD type 2 dimension), not as it
-- is today. Orders as they stand: fact_orders_current.
SELECT
  o.order_id,
  o.customer_id,
  o.order_date,
  o.total_amount,
  c.city AS customer_city_then,
  c.country AS customer_country_then,
  c.order_count AS orders_by_version_end
FROM `${PROJECT}.${DATASET}.fact_orders_current` AS o
JOIN `${PROJECT}.${DATASET}.dim_customer` AS c
  ON c.customer_id = o.customer_id
 AND o.order_date >= c.valid_from
 AND (c.valid_to IS NULL OR o.order_date < c.valid_to)
ORDER BY o.order_date, o.order_id;
