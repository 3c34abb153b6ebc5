-- Order status events, flat, for the orders with a row on one UTC day (query
-- parameter day) in the raw order_events table: every event of those orders,
-- whatever its day, in its latest version (order_events_dedup: corrections
-- applied, invalidated and deleted events gone), with the shipping address
-- and the sums of its items as columns. Rebuilding whole orders is what lets
-- a deletion or a correction that moves an event to another day leave no
-- stale row. A re-run changes nothing unless those orders changed. Every
-- other warehouse step reads orders from here and fact_order_items.
MERGE `${PROJECT}.${DATASET}.fact_order_events` AS t
USING (
  SELECT
    e.event_id,
    ANY_VALUE(DATE(e.event_time)) AS day,
    ANY_VALUE(e.order_id) AS order_id,
    ANY_VALUE(e.customer_id) AS customer_id,
    ANY_VALUE(e.status) AS status,
    ANY_VALUE(CASE e.status WHEN 'delivered' THEN 4 WHEN 'shipped' THEN 3 WHEN 'processing' THEN 2 ELSE 1 END)
      AS status_rank,
    ANY_VALUE(e.event_time) AS event_time,
    ANY_VALUE(e.order_date) AS order_date,
    ANY_VALUE(e.shipping_address.city) AS city,
    ANY_VALUE(e.shipping_address.country) AS country,
    ANY_VALUE(e.total_amount) AS total_amount,
    SUM(i.quantity * i.price) AS items_total,
    IFNULL(SUM(i.quantity), 0) AS units
  FROM `${PROJECT}.${DATASET}.order_events_dedup` AS e
  LEFT JOIN UNNEST(e.items) AS i
  WHERE e.order_id IN (
    SELECT r.order_id FROM `${PROJECT}.${DATASET}.order_events` AS r
    WHERE r.event_time >= TIMESTAMP(@day) AND r.event_time < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY)))
  GROUP BY e.event_id
) AS s
ON t.event_id = s.event_id
WHEN MATCHED AND (t.day != s.day OR t.order_id != s.order_id OR t.customer_id != s.customer_id
                  OR t.status != s.status OR t.event_time != s.event_time OR t.order_date != s.order_date
                  OR t.city != s.city OR t.country != s.country OR t.total_amount != s.total_amount
                  OR IFNULL(t.items_total != s.items_total, (t.items_total IS NULL) != (s.items_total IS NULL))
                  OR t.units != s.units) THEN
  UPDATE SET day = s.day, order_id = s.order_id, customer_id = s.customer_id, status = s.status,
    status_rank = s.status_rank, event_time = s.event_time, order_date = s.order_date, city = s.city,
    country = s.country, total_amount = s.total_amount, items_total = s.items_total, units = s.units,
    built_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED BY TARGET THEN
  INSERT (event_id, day, order_id, customer_id, status, status_rank, event_time, order_date, city, country,
          total_amount, items_total, units, built_at)
  VALUES (s.event_id, s.day, s.order_id, s.customer_id, s.status, s.status_rank, s.event_time, s.order_date, s.city,
          s.country, s.total_amount, s.items_total, s.units, CURRENT_TIMESTAMP())
WHEN NOT MATCHED BY SOURCE AND (t.day = @day OR t.order_id IN (
    SELECT r.order_id FROM `${PROJECT}.${DATASET}.order_events` AS r
    WHERE r.event_time >= TIMESTAMP(@day) AND r.event_time < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY)))) THEN
  DELETE
