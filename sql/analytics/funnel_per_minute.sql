-- The funnel per minute of event time: distinct users who viewed a product,
-- who added one to their cart, and customers who placed an order (an order's
-- first status, pending), with the share of viewers who ordered that minute.
WITH activity AS (
  SELECT
    TIMESTAMP_TRUNC(event_time, MINUTE) AS minute,
    COUNT(DISTINCT IF(activity_type = 'view_product', user_id, NULL)) AS viewers,
    COUNT(DISTINCT IF(activity_type = 'add_to_cart', user_id, NULL)) AS added_to_cart
  FROM `${PROJECT}.${DATASET}.user_activity_events_dedup`
  WHERE event_time >= @start AND event_time < @end
  GROUP BY minute
),
orders AS (
  SELECT TIMESTAMP_TRUNC(event_time, MINUTE) AS minute, COUNT(DISTINCT customer_id) AS buyers, COUNT(*) AS orders
  FROM `${PROJECT}.${DATASET}.order_events_dedup`
  WHERE event_time >= @start AND event_time < @end AND status = 'pending'
  GROUP BY minute
)
SELECT
  COALESCE(a.minute, o.minute) AS minute,
  COALESCE(a.viewers, 0) AS viewers,
  COALESCE(a.added_to_cart, 0) AS added_to_cart,
  COALESCE(o.buyers, 0) AS buyers,
  COALESCE(o.orders, 0) AS orders,
  SAFE_DIVIDE(COALESCE(o.buyers, 0), a.viewers) AS viewer_to_buyer
FROM activity AS a
FULL OUTER JOIN orders AS o ON o.minute = a.minute
ORDER BY minute;
