-- Data-quality rules beyond the schema, for the events of one UTC day (query
-- parameter day; run after fact_order_events). Each rule names the events it
-- catches; the MERGE makes a re-run of a day change nothing and removes what
-- a rule no longer catches (a correction fixed the event).
--   order_total_mismatch   (excluded) total_amount differs from the sum of
--                                     quantity x price by more than a cent
--   order_status_backwards (excluded) a status earlier in the lifecycle than
--                                     one the order reached at a strictly
--                                     earlier event time
--   negative_stock         (flagged)  the running stock of a product in a
--                                     warehouse drops below zero; the
--                                     movement is real, so it still counts
-- Excluded events are left out of the dimensions and daily tables (the view
-- fact_orders_current and daily_sales skip them); flagged ones are reported.
MERGE `${PROJECT}.${DATASET}.dq_quarantine` AS t
USING (
  WITH lifecycle AS (
    SELECT f.event_id, f.order_id, f.customer_id, f.status, f.status_rank, f.event_time, f.total_amount,
      -- Events at the same time in lifecycle order: an order sent without updated_at has every status at
      -- its order_date, which is not going backwards.
      MAX(f.status_rank) OVER (PARTITION BY f.order_id ORDER BY f.event_time, f.status_rank, f.event_id
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS rank_before
    FROM `${PROJECT}.${DATASET}.fact_order_events` AS f
    WHERE f.order_id IN (SELECT d.order_id FROM `${PROJECT}.${DATASET}.fact_order_events` AS d WHERE d.day = @day)
  ),
  stock AS (
    SELECT v.event_id, v.event_time, v.product_id, v.warehouse_id, v.quantity_change, v.reason,
      SUM(v.quantity_change) OVER (PARTITION BY v.product_id, v.warehouse_id ORDER BY v.event_time, v.event_id
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS stock_after
    FROM `${PROJECT}.${DATASET}.inventory_events_dedup` AS v
    WHERE v.event_time < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY))
  ),
  caught AS (
    SELECT 'order_total_mismatch' AS rule, 'excluded' AS action, 'order' AS event_type, f.event_id,
      f.order_id AS entity_id, f.event_time,
      CONCAT('total_amount ', CAST(f.total_amount AS STRING), ', sum of quantity x price ',
             IFNULL(CAST(f.items_total AS STRING), 'none')) AS detail,
      TO_JSON_STRING(STRUCT(f.order_id, f.customer_id, f.status, f.total_amount, f.items_total)) AS row_json
    FROM `${PROJECT}.${DATASET}.fact_order_events` AS f
    WHERE f.day = @day AND (f.items_total IS NULL OR ABS(f.total_amount - f.items_total) > 0.01)
    UNION ALL
    SELECT 'order_status_backwards', 'excluded', 'order', l.event_id, l.order_id, l.event_time,
      CONCAT(l.status, ' after ', CASE l.rank_before WHEN 4 THEN 'delivered' WHEN 3 THEN 'shipped'
                                                     WHEN 2 THEN 'processing' ELSE 'pending' END),
      TO_JSON_STRING(STRUCT(l.order_id, l.customer_id, l.status, l.total_amount))
    FROM lifecycle AS l
    WHERE l.rank_before > l.status_rank
      AND l.event_time >= TIMESTAMP(@day) AND l.event_time < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY))
    UNION ALL
    SELECT 'negative_stock', 'flagged', 'inventory', k.event_id, CONCAT(k.product_id, '/', k.warehouse_id),
      k.event_time,
      CONCAT('stock ', CAST(k.stock_after AS STRING), ' after ', k.reason, ' ', CAST(k.quantity_change AS STRING)),
      TO_JSON_STRING(STRUCT(k.product_id, k.warehouse_id, k.quantity_change, k.reason))
    FROM stock AS k
    WHERE k.stock_after < 0 AND k.event_time >= TIMESTAMP(@day)
  )
  SELECT TO_HEX(SHA256(CONCAT(c.rule, '|', c.event_type, '|', c.event_id))) AS quarantine_id, @day AS day,
    c.rule, c.action, c.event_type, c.event_id, c.entity_id, c.event_time, c.detail, c.row_json
  FROM caught AS c
) AS s
ON t.quarantine_id = s.quarantine_id AND t.day = @day
WHEN MATCHED AND (t.detail != s.detail OR t.row_json != s.row_json OR t.event_time != s.event_time) THEN
  UPDATE SET detail = s.detail, row_json = s.row_json, event_time = s.event_time, built_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED BY TARGET THEN
  INSERT (quarantine_id, day, rule, action, event_type, event_id, entity_id, event_time, detail, row_json, built_at)
  VALUES (s.quarantine_id, s.day, s.rule, s.action, s.event_type, s.event_id, s.entity_id, s.event_time, s.detail,
          s.row_json, CURRENT_TIMESTAMP())
WHEN NOT MATCHED BY SOURCE AND t.day = @day THEN
  DELETE
