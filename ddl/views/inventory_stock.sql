-- Stock per product and warehouse: the sum of every deduplicated movement.
CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.inventory_stock` AS
SELECT
  product_id,
  warehouse_id,
  SUM(quantity_change) AS stock,
  COUNT(*) AS movements,
  MAX(event_time) AS last_movement_at
FROM `${PROJECT}.${DATASET}.inventory_events_dedup`
GROUP BY product_id, warehouse_id;
