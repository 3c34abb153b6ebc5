-- Each order as it stands in the warehouse: of its status events in
-- fact_order_events (python -m warehouse daily), the latest by event time,
-- leaving out the events a data-quality rule excluded (dq_quarantine). The
-- dimensions and the daily product and behaviour tables read orders here.
CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.fact_orders_current` AS
SELECT event_id, order_id, customer_id, status, event_time, order_date, city, country, total_amount, units
FROM (
  SELECT f.*,
    ROW_NUMBER() OVER (PARTITION BY f.order_id ORDER BY f.event_time DESC, f.status_rank DESC, f.event_id DESC)
      AS pick
  FROM `${PROJECT}.${DATASET}.fact_order_events` AS f
  WHERE f.event_id NOT IN (
    SELECT q.event_id FROM `${PROJECT}.${DATASET}.dq_quarantine` AS q
    WHERE q.event_type = 'order' AND q.action = 'excluded')
)
WHERE pick = 1;
