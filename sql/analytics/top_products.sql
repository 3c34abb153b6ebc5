-- The ten products ordered most (units), with revenue and the number of
-- orders, over orders placed (status pending) in the range.
SELECT
  item.product_id,
  ANY_VALUE(item.product_name) AS product_name,
  SUM(item.quantity) AS units,
  SUM(item.quantity * item.price) AS revenue,
  COUNT(DISTINCT o.order_id) AS orders
FROM `${PROJECT}.${DATASET}.order_events_dedup` AS o, UNNEST(o.items) AS item
WHERE o.event_time >= @start AND o.event_time < @end AND o.status = 'pending'
GROUP BY item.product_id
ORDER BY units DESC, revenue DESC, item.product_id
LIMIT 10;
