-- The items of the order status events in fact_order_events' scope (every
-- event of the orders with a raw row on one UTC day, query parameter day),
-- one row each: product, name and unit price in that order, quantity. From
-- order_events_dedup, as fact_order_events; rows of events no longer there
-- are deleted.
MERGE `${PROJECT}.${DATASET}.fact_order_items` AS t
USING (
  SELECT e.event_id, DATE(e.event_time) AS day, pos AS line, e.order_id, i.product_id, i.product_name, i.quantity,
    i.price, e.order_date, e.event_time
  FROM `${PROJECT}.${DATASET}.order_events_dedup` AS e, UNNEST(e.items) AS i WITH OFFSET AS pos
  WHERE e.order_id IN (
    SELECT r.order_id FROM `${PROJECT}.${DATASET}.order_events` AS r
    WHERE r.event_time >= TIMESTAMP(@day) AND r.event_time < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY)))
) AS s
ON t.event_id = s.event_id AND t.line = s.line
WHEN MATCHED AND (t.day != s.day OR t.product_id != s.product_id OR t.product_name != s.product_name
                  OR t.quantity != s.quantity OR t.price != s.price OR t.order_date != s.order_date
                  OR t.event_time != s.event_time) THEN
  UPDATE SET day = s.day, product_id = s.product_id, product_name = s.product_name, quantity = s.quantity,
    price = s.price, order_date = s.order_date, event_time = s.event_time, built_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED BY TARGET THEN
  INSERT (event_id, day, line, order_id, product_id, product_name, quantity, price, order_date, event_time, built_at)
  VALUES (s.event_id, s.day, s.line, s.order_id, s.product_id, s.product_name, s.quantity, s.price, s.order_date,
          s.event_time, CURRENT_TIMESTAMP())
WHEN NOT MATCHED BY SOURCE AND (t.day = @day OR t.order_id IN (
    SELECT r.order_id FROM `${PROJECT}.${DATASET}.order_events` AS r
    WHERE r.event_time >= TIMESTAMP(@day) AND r.event_time < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY)))) THEN
  DELETE
