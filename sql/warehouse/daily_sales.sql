-- Sales of one UTC day (query parameter day) by shipping country and status:
-- the order status events of the day (fact_order_events: each event's latest
-- version), less those a quality rule excluded. orders = distinct orders
-- that entered the status; revenue and items are theirs. A re-run changes
-- nothing; a combination that disappeared is deleted.
MERGE `${PROJECT}.${DATASET}.daily_sales` AS t
USING (
  SELECT @day AS day, f.country, f.status, COUNT(DISTINCT f.order_id) AS orders,
    SUM(f.total_amount) AS revenue, SUM(f.units) AS items
  FROM `${PROJECT}.${DATASET}.fact_order_events` AS f
  WHERE f.day = @day
    AND f.event_id NOT IN (SELECT q.event_id FROM `${PROJECT}.${DATASET}.dq_quarantine` AS q
                           WHERE q.event_type = 'order' AND q.action = 'excluded')
  GROUP BY f.country, f.status
) AS s
ON t.day = s.day AND t.country = s.country AND t.status = s.status
WHEN MATCHED AND (t.orders != s.orders OR t.revenue != s.revenue OR t.items != s.items) THEN
  UPDATE SET orders = s.orders, revenue = s.revenue, items = s.items, built_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED BY TARGET THEN
  INSERT (day, country, status, orders, revenue, items, built_at)
  VALUES (s.day, s.country, s.status, s.orders, s.revenue, s.items, CURRENT_TIMESTAMP())
WHEN NOT MATCHED BY SOURCE AND t.day = @day THEN
  DELETE
