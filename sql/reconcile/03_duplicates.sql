-- 3. Duplicates. failures: event_ids that appear more than once in the
-- deduplicated views (must be 0). raw_extra_rows: extra copies in the raw
-- tables, explained by how often the producer published the event
-- (published_twice) or not (unexplained: insert retries, replays after a crash).
WITH ledger AS (
  SELECT event_id, copies
  FROM `${PROJECT}.${DATASET}.producer_ledger`
  WHERE (@run_id = '' OR run_id = @run_id)
    AND event_time >= @start AND event_time < @end
    AND NOT malformed
),
raw AS (
  SELECT t.event_type, t.event_id, COUNT(*) AS n
  FROM `${PROJECT}.${DATASET}.all_events` AS t
  JOIN ledger USING (event_id)
  GROUP BY t.event_type, t.event_id
),
dedup AS (
  SELECT t.event_type, t.event_id, COUNT(*) AS n
  FROM `${PROJECT}.${DATASET}.all_events_dedup` AS t
  JOIN ledger USING (event_id)
  GROUP BY t.event_type, t.event_id
)
SELECT
  raw.event_type,
  COUNTIF(dedup.n > 1) AS failures,
  SUM(raw.n - 1) AS raw_extra_rows,
  SUM(IF(raw.n > 1 AND ledger.copies > 1, raw.n - 1, 0)) AS raw_extra_published_twice,
  SUM(IF(raw.n > 1 AND ledger.copies = 1, raw.n - 1, 0)) AS raw_extra_unexplained,
  COUNTIF(ledger.copies > 1) AS producer_duplicates_absorbed
FROM raw
JOIN dedup USING (event_type, event_id)
JOIN ledger USING (event_id)
GROUP BY raw.event_type
ORDER BY raw.event_type;
