-- Current state of every order: its latest status event. History stays in
-- order_events (one row per status change); a late status event never moves
-- an order backwards because ties and out-of-order arrivals are resolved by
-- event time (updated_at, or order_date when the producer sends no
-- updated_at), then by lifecycle rank.
CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.orders_current` AS
SELECT
  order_id,
  customer_id,
  order_date,
  status,
  event_time AS status_since,
  items,
  shipping_address,
  total_amount,
  event_id AS last_event_id
FROM `${PROJECT}.${DATASET}.order_events_dedup`
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY order_id
  ORDER BY event_time DESC,
    CASE status WHEN 'delivered' THEN 4 WHEN 'shipped' THEN 3 WHEN 'processing' THEN 2 ELSE 1 END DESC,
    event_id DESC) = 1;
