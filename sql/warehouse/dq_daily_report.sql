-- The data-quality report of one UTC day (query parameter day): per rule, the events it
-- looked at and those it caught (dq_quarantine, built just before).
MERGE `${PROJECT}.${DATASET}.dq_daily_report` AS t
USING (
  WITH checked AS (
    SELECT 'order_total_mismatch' AS rule, 'excluded' AS action, COUNT(*) AS checked
    FROM `${PROJECT}.${DATASET}.fact_order_events` WHERE day = @day
    UNION ALL
    SELECT 'order_status_backwards', 'excluded', COUNT(*)
    FROM `${PROJECT}.${DATASET}.fact_order_events` WHERE day = @day
    UNION ALL
    SELECT 'negative_stock', 'flagged', COUNT(*)
    FROM `${PROJECT}.${DATASET}.inventory_events_dedup`
    WHERE event_time >= TIMESTAMP(@day) AND event_time < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY))
  ),
  caught AS (
    SELECT rule, COUNT(*) AS quarantined FROM `${PROJECT}.${DATASET}.dq_quarantine`
    WHERE day = @day GROUP BY rule
  )
  SELECT @day AS day, c.rule, c.action, c.checked, IFNULL(q.quarantined, 0) AS quarantined
  FROM checked AS c LEFT JOIN caught AS q ON q.rule = c.rule
) AS s
ON t.day = s.day AND t.rule = s.rule
WHEN MATCHED AND (t.checked != s.checked OR t.quarantined != s.quarantined) THEN
  UPDATE SET checked = s.checked, quarantined = s.quarantined, built_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED BY TARGET THEN
  INSERT (day, rule, action, checked, quarantined, built_at)
  VALUES (s.day, s.rule, s.action, s.checked, s.quarantined, CURRENT_TIMESTAMP())
