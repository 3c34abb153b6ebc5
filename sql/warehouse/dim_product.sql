-- Products as they stand (SCD type 1), for the products with an order item
-- or a stock movement on one UTC day (query parameter day) in the raw tables: name and unit
-- price in the latest order, units sold over all orders as they stand
-- (fact_orders_current and fact_order_items), stock over all warehouses
-- (inventory_events_dedup). Rebuilt whole for those products, so a re-run
-- changes nothing and a late event is taken in by re-running its day.
MERGE `${PROJECT}.${DATASET}.dim_product` AS t
USING (
  WITH touched AS (  -- every version in the raw tables: an item a correction removed is touched too
    SELECT DISTINCT i.product_id FROM `${PROJECT}.${DATASET}.order_events` AS r, UNNEST(r.items) AS i
    WHERE r.event_time >= TIMESTAMP(@day) AND r.event_time < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY))
    UNION DISTINCT
    SELECT DISTINCT v.product_id FROM `${PROJECT}.${DATASET}.inventory_events` AS v
    WHERE v.event_time >= TIMESTAMP(@day) AND v.event_time < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY))
  ),
  sold AS (
    SELECT i.product_id, i.product_name, i.price, i.quantity, o.order_date, o.order_id
    FROM `${PROJECT}.${DATASET}.fact_orders_current` AS o
    JOIN `${PROJECT}.${DATASET}.fact_order_items` AS i ON i.event_id = o.event_id
    WHERE i.product_id IN (SELECT product_id FROM touched)
  ),
  latest AS (
    SELECT x.product_id, x.product_name, x.price
    FROM (SELECT d.product_id, d.product_name, d.price,
            ROW_NUMBER() OVER (PARTITION BY d.product_id ORDER BY d.order_date DESC, d.order_id DESC) AS pick
          FROM sold AS d) AS x
    WHERE x.pick = 1
  ),
  sales AS (
    SELECT d.product_id, SUM(d.quantity) AS units_sold, MIN(d.order_date) AS first_at, MAX(d.order_date) AS last_at
    FROM sold AS d GROUP BY d.product_id
  ),
  stock AS (
    SELECT v.product_id, SUM(v.quantity_change) AS stock, COUNT(DISTINCT v.warehouse_id) AS warehouses,
      MIN(v.event_time) AS first_at, MAX(v.event_time) AS last_at
    FROM `${PROJECT}.${DATASET}.inventory_events_dedup` AS v
    WHERE v.product_id IN (SELECT product_id FROM touched)
    GROUP BY v.product_id
  )
  SELECT p.product_id, l.product_name, l.price AS last_price, IFNULL(s.units_sold, 0) AS units_sold,
    IFNULL(k.stock, 0) AS stock, IFNULL(k.warehouses, 0) AS warehouses,
    LEAST(IFNULL(s.first_at, k.first_at), IFNULL(k.first_at, s.first_at)) AS first_seen_at,
    GREATEST(IFNULL(s.last_at, k.last_at), IFNULL(k.last_at, s.last_at)) AS last_seen_at
  FROM touched AS p
  LEFT JOIN latest AS l ON l.product_id = p.product_id
  LEFT JOIN sales AS s ON s.product_id = p.product_id
  LEFT JOIN stock AS k ON k.product_id = p.product_id
  WHERE s.product_id IS NOT NULL OR k.product_id IS NOT NULL
) AS s
ON t.product_id = s.product_id
WHEN MATCHED AND (IFNULL(t.product_name, '') != IFNULL(s.product_name, '')
                  OR IFNULL(t.last_price, -1) != IFNULL(s.last_price, -1)
                  OR t.units_sold != s.units_sold OR t.stock != s.stock OR t.warehouses != s.warehouses
                  OR t.first_seen_at != s.first_seen_at OR t.last_seen_at != s.last_seen_at) THEN
  UPDATE SET product_name = s.product_name, last_price = s.last_price, units_sold = s.units_sold, stock = s.stock,
    warehouses = s.warehouses, first_seen_at = s.first_seen_at, last_seen_at = s.last_seen_at,
    built_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED BY TARGET THEN
  INSERT (product_id, product_name, last_price, units_sold, stock, warehouses, first_seen_at, last_seen_at, built_at)
  VALUES (s.product_id, s.product_name, s.last_price, s.units_sold, s.stock, s.warehouses, s.first_seen_at,
          s.last_seen_at, CURRENT_TIMESTAMP())
WHEN NOT MATCHED BY SOURCE AND t.product_id IN (  -- touched, and nothing of it is left
    SELECT i.product_id FROM `${PROJECT}.${DATASET}.order_events` AS r, UNNEST(r.items) AS i
    WHERE r.event_time >= TIMESTAMP(@day) AND r.event_time < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY))
    UNION DISTINCT
    SELECT v.product_id FROM `${PROJECT}.${DATASET}.inventory_events` AS v
    WHERE v.event_time >= TIMESTAMP(@day) AND v.event_time < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY))) THEN
  DELETE
