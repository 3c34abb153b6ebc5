-- 2. Unexpected: rows in the event tables, inside the event-time range the
-- scope's ledger covers, that no producer run published as a valid event.
WITH scope AS (
  SELECT MIN(event_time) AS lo, MAX(event_time) AS hi
  FROM `${PROJECT}.${DATASET}.producer_ledger`
  WHERE (@run_id = '' OR run_id = @run_id)
    AND event_time >= @start AND event_time < @end
),
known AS (
  SELECT DISTINCT event_type, event_id FROM `${PROJECT}.${DATASET}.producer_ledger`
  WHERE NOT malformed
)
SELECT
  t.event_type,
  COUNT(*) AS rows_in_scope,
  COUNTIF(k.event_id IS NULL) AS failures,
  ARRAY_AGG(IF(k.event_id IS NULL, t.event_id, NULL) IGNORE NULLS) AS sample_unexpected_ids
FROM `${PROJECT}.${DATASET}.all_events` AS t
CROSS JOIN scope
LEFT JOIN known AS k ON k.event_id = t.event_id AND k.event_type = t.event_type
WHERE t.event_time >= scope.lo AND t.event_time <= scope.hi
GROUP BY t.event_type
ORDER BY t.event_type;
