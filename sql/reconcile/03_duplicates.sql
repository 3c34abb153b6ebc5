-- 3. Duplicates. The *_dedup views must hold each event once, and the raw
-- tables may hold an event at most as many times as the producer published it
-- (all its contents together: an identical copy that BigQuery's best-effort
-- insertId dedup let through).
-- A raw row beyond the published copies is a bug: the job inserted an event
-- twice (a retry, or a replay it did not absorb).
WITH ledger AS (
  SELECT event_type, event_id, SUM(copies) AS copies
  FROM `${PROJECT}.${DATASET}.producer_ledger`
  WHERE (@run_id = '' OR run_id = @run_id)
    AND event_time >= @start AND event_time < @end
    AND NOT malformed
  GROUP BY event_type, event_id
),
raw AS (
  SELECT event_type, event_id, COUNT(*) AS n
  FROM `${PROJECT}.${DATASET}.all_events`
  GROUP BY event_type, event_id
),
dedup AS (
  SELECT event_type, event_id, COUNT(*) AS n
  FROM `${PROJECT}.${DATASET}.all_events_dedup`
  GROUP BY event_type, event_id
)
SELECT
  l.event_type,
  COUNTIF(COALESCE(dedup.n, 0) > 1) + COUNTIF(COALESCE(raw.n, 0) > l.copies) AS failures,
  COUNTIF(COALESCE(dedup.n, 0) > 1) AS repeated_in_dedup_views,
  COUNTIF(COALESCE(raw.n, 0) > l.copies) AS raw_rows_beyond_published_copies,
  SUM(GREATEST(COALESCE(raw.n, 0) - 1, 0)) AS raw_extra_rows,
  COUNTIF(l.copies > 1) AS published_more_than_once,
  ARRAY_AGG(IF(COALESCE(dedup.n, 0) > 1 OR COALESCE(raw.n, 0) > l.copies, l.event_id, NULL) IGNORE NULLS)
    AS sample_duplicated_ids
FROM ledger AS l
LEFT JOIN raw USING (event_type, event_id)
LEFT JOIN dedup USING (event_type, event_id)
GROUP BY l.event_type
ORDER BY l.event_type;
