-- Products of one UTC day (query parameter day): units sold in orders placed that day
-- (fact_orders_current, by order_date, each order once as it stands), stock
-- movements of the day by reason, and the stock at the end of the day over
-- all warehouses (every movement up to then). One row per product with a
-- sale or a movement that day.
MERGE `${PROJECT}.${DATASET}.daily_product` AS t
USING (
  WITH sales AS (
    SELECT i.product_id, SUM(i.quantity) AS units_sold, SUM(i.quantity * i.price) AS sales_amount
    FROM `${PROJECT}.${DATASET}.fact_orders_current` AS o
    JOIN `${PROJECT}.${DATASET}.fact_order_items` AS i ON i.event_id = o.event_id
    WHERE o.order_date >= TIMESTAMP(@day) AND o.order_date < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY))
    GROUP BY i.product_id
  ),
  moves AS (
    SELECT product_id,
      SUM(IF(reason = 'restock', quantity_change, 0)) AS restocked,
      SUM(IF(reason = 'sale', quantity_change, 0)) AS sold,
      SUM(IF(reason = 'return', quantity_change, 0)) AS returned,
      SUM(IF(reason = 'damage', quantity_change, 0)) AS damaged,
      SUM(quantity_change) AS net_change
    FROM `${PROJECT}.${DATASET}.inventory_events_dedup`
    WHERE event_time >= TIMESTAMP(@day) AND event_time < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY))
    GROUP BY product_id
  ),
  products AS (
    SELECT product_id FROM sales UNION DISTINCT SELECT product_id FROM moves
  ),
  stock AS (
    SELECT product_id, SUM(quantity_change) AS stock_end_of_day
    FROM `${PROJECT}.${DATASET}.inventory_events_dedup`
    WHERE event_time < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY))
      AND product_id IN (SELECT product_id FROM products)
    GROUP BY product_id
  )
  SELECT @day AS day, p.product_id, IFNULL(s.units_sold, 0) AS units_sold,
    IFNULL(s.sales_amount, 0) AS sales_amount, IFNULL(m.restocked, 0) AS restocked, IFNULL(m.sold, 0) AS sold,
    IFNULL(m.returned, 0) AS returned, IFNULL(m.damaged, 0) AS damaged, IFNULL(m.net_change, 0) AS net_change,
    IFNULL(k.stock_end_of_day, 0) AS stock_end_of_day
  FROM products AS p
  LEFT JOIN sales AS s ON s.product_id = p.product_id
  LEFT JOIN moves AS m ON m.product_id = p.product_id
  LEFT JOIN stock AS k ON k.product_id = p.product_id
) AS s
ON t.day = s.day AND t.product_id = s.product_id
WHEN MATCHED AND (t.units_sold != s.units_sold OR t.sales_amount != s.sales_amount OR t.restocked != s.restocked
                  OR t.sold != s.sold OR t.returned != s.returned OR t.damaged != s.damaged
                  OR t.net_change != s.net_change OR t.stock_end_of_day != s.stock_end_of_day) THEN
  UPDATE SET units_sold = s.units_sold, sales_amount = s.sales_amount, restocked = s.restocked, sold = s.sold,
    returned = s.returned, damaged = s.damaged, net_change = s.net_change, stock_end_of_day = s.stock_end_of_day,
    built_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED BY TARGET THEN
  INSERT (day, product_id, units_sold, sales_amount, restocked, sold, returned, damaged, net_change, stock_end_of_day,
          built_at)
  VALUES (s.day, s.product_id, s.units_sold, s.sales_amount, s.restocked, s.sold, s.returned, s.damaged,
          s.net_change, s.stock_end_of_day, CURRENT_TIMESTAMP())
WHEN NOT MATCHED BY SOURCE AND t.day = @day THEN
  DELETE
