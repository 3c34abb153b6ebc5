-- 4. Per minute and type: producer count vs BigQuery count (distinct
-- events), both by event-time minute, of events as first sent (their changes
-- are check 10's; an invalidated event is still an event that arrived). The
-- reconcile CLI adds the count found in each minute's folder of files.
WITH ledger AS (
  SELECT event_type, event_id, TIMESTAMP_TRUNC(event_time, MINUTE) AS minute
  FROM `${PROJECT}.${DATASET}.producer_ledger`
  WHERE (@run_id = '' OR run_id = @run_id)
    AND event_time >= @start AND event_time < @end
    AND NOT malformed AND NOT conflict AND change_type IS NULL
),
producer AS (
  SELECT minute, event_type, COUNT(DISTINCT event_id) AS producer_count
  FROM ledger GROUP BY minute, event_type
),
stored AS (
  SELECT TIMESTAMP_TRUNC(t.event_time, MINUTE) AS minute, t.event_type, t.event_id
  FROM `${PROJECT}.${DATASET}.all_events` AS t
  JOIN (SELECT DISTINCT event_type, event_id FROM ledger) AS l USING (event_type, event_id)
  WHERE t.change_type IS NULL
),
target AS (
  SELECT minute, event_type, COUNT(DISTINCT event_id) AS bigquery_count
  FROM stored GROUP BY minute, event_type
)
SELECT
  COALESCE(p.minute, t.minute) AS minute,
  COALESCE(p.event_type, t.event_type) AS event_type,
  COALESCE(p.producer_count, 0) AS producer_count,
  COALESCE(t.bigquery_count, 0) AS bigquery_count,
  IF(COALESCE(p.producer_count, 0) = COALESCE(t.bigquery_count, 0), 0, 1) AS failures
FROM producer AS p
FULL OUTER JOIN target AS t ON t.minute = p.minute AND t.event_type = p.event_type
ORDER BY minute, event_type;
