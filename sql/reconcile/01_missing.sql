-- 1. Missing: well-formed events the producer published (its ledger) that are
-- absent from the event tables (each identity once, whichever of its contents).
WITH ledger AS (
  SELECT DISTINCT event_id, event_type
  FROM `${PROJECT}.${DATASET}.producer_ledger`
  WHERE (@run_id = '' OR run_id = @run_id)
    AND event_time >= @start AND event_time < @end
    AND NOT malformed
)
SELECT
  l.event_type,
  COUNT(*) AS expected,
  COUNTIF(t.event_id IS NULL) AS failures,
  ARRAY_AGG(IF(t.event_id IS NULL, l.event_id, NULL) IGNORE NULLS) AS sample_missing_ids
FROM ledger AS l
LEFT JOIN (SELECT DISTINCT event_type, event_id FROM `${PROJECT}.${DATASET}.all_events`) AS t
  ON t.event_id = l.event_id AND t.event_type = l.event_type
GROUP BY l.event_type
ORDER BY l.event_type;
