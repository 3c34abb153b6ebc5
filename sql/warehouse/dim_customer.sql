-- Customer profiles, SCD type 2, for the customers with an order event on
-- one UTC day (query parameter day). Each such customer's whole history is
-- rebuilt from fact_orders_current (every order as it stands, quality rules
-- applied): orders in order_date order, a new version whenever the shipping
-- city or country differs from the previous order's. The MERGE then inserts
-- new versions, updates changed ones and deletes versions no longer backed (a
-- corrected address, a deleted order), so re-running any day is safe, and a
-- late event is taken in by re-running the day of its event time.
MERGE `${PROJECT}.${DATASET}.dim_customer` AS t
USING (
  WITH touched AS (  -- every version in the raw table: a customer whose order was deleted is touched too
    SELECT DISTINCT r.customer_id FROM `${PROJECT}.${DATASET}.order_events` AS r
    WHERE r.event_time >= TIMESTAMP(@day) AND r.event_time < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY))
  ),
  history AS (
    SELECT o.customer_id, o.order_id, o.order_date, o.total_amount, o.city, o.country,
      LAG(o.city) OVER (PARTITION BY o.customer_id ORDER BY o.order_date, o.order_id) AS prev_city,
      LAG(o.country) OVER (PARTITION BY o.customer_id ORDER BY o.order_date, o.order_id) AS prev_country
    FROM `${PROJECT}.${DATASET}.fact_orders_current` AS o
    WHERE o.customer_id IN (SELECT customer_id FROM touched)
  ),
  numbered AS (
    SELECT h.customer_id, h.order_id, h.order_date, h.total_amount, h.city, h.country,
      SUM(IF(h.prev_city = h.city AND h.prev_country = h.country, 0, 1)) OVER (
        PARTITION BY h.customer_id ORDER BY h.order_date, h.order_id
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS version_no
    FROM history AS h
  ),
  versions AS (
    SELECT n.customer_id, n.version_no, ANY_VALUE(n.city) AS city, ANY_VALUE(n.country) AS country,
      MIN(n.order_date) AS valid_from, MAX(n.order_date) AS last_order_at, MIN(n.order_id) AS some_order,
      COUNT(*) AS orders_in_version, SUM(n.total_amount) AS value_in_version
    FROM numbered AS n
    GROUP BY n.customer_id, n.version_no
  )
  SELECT
    -- An order of the version in the key: two versions can start at the same instant.
    TO_HEX(SHA256(CONCAT(v.customer_id, '|', FORMAT_TIMESTAMP('%Y-%m-%dT%H:%M:%E6SZ', v.valid_from), '|',
                         v.some_order))) AS customer_key,
    v.customer_id, v.city, v.country, v.valid_from,
    LEAD(v.valid_from) OVER (PARTITION BY v.customer_id ORDER BY v.version_no) AS valid_to,
    LEAD(v.valid_from) OVER (PARTITION BY v.customer_id ORDER BY v.version_no) IS NULL AS is_current,
    MIN(v.valid_from) OVER (PARTITION BY v.customer_id) AS first_order_at,
    v.last_order_at, v.orders_in_version,
    SUM(v.orders_in_version) OVER (PARTITION BY v.customer_id ORDER BY v.version_no
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS order_count,
    SUM(v.value_in_version) OVER (PARTITION BY v.customer_id ORDER BY v.version_no
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS lifetime_value
  FROM versions AS v
) AS s
ON t.customer_key = s.customer_key
WHEN MATCHED AND (t.city != s.city OR t.country != s.country OR t.is_current != s.is_current
                  OR IFNULL(t.valid_to != s.valid_to, (t.valid_to IS NULL) != (s.valid_to IS NULL))
                  OR t.first_order_at != s.first_order_at OR t.last_order_at != s.last_order_at
                  OR t.orders_in_version != s.orders_in_version OR t.order_count != s.order_count
                  OR t.lifetime_value != s.lifetime_value) THEN
  UPDATE SET city = s.city, country = s.country, valid_to = s.valid_to, is_current = s.is_current,
    first_order_at = s.first_order_at, last_order_at = s.last_order_at, orders_in_version = s.orders_in_version,
    order_count = s.order_count, lifetime_value = s.lifetime_value, built_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED BY TARGET THEN
  INSERT (customer_key, customer_id, city, country, valid_from, valid_to, is_current, first_order_at, last_order_at,
          orders_in_version, order_count, lifetime_value, built_at)
  VALUES (s.customer_key, s.customer_id, s.city, s.country, s.valid_from, s.valid_to, s.is_current, s.first_order_at,
          s.last_order_at, s.orders_in_version, s.order_count, s.lifetime_value, CURRENT_TIMESTAMP())
WHEN NOT MATCHED BY SOURCE AND t.customer_id IN (
    SELECT r.customer_id FROM `${PROJECT}.${DATASET}.order_events` AS r
    WHERE r.event_time >= TIMESTAMP(@day) AND r.event_time < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY))) THEN
  DELETE
