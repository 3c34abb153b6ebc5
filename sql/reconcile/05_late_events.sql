-- 5. Late events: every event the producer delayed (30-60 s late, or beyond
-- the job's allowed lateness) is stored with the event time of its payload,
-- so it sits in the partition (DATE(event_time)) and minute of its event
-- time, not of its arrival.
WITH late AS (
  SELECT event_id, event_type, event_time, intended_delay_s, far_late
  FROM `${PROJECT}.${DATASET}.producer_ledger`
  WHERE (@run_id = '' OR run_id = @run_id)
    AND event_time >= @start AND event_time < @end
    AND NOT malformed AND NOT conflict AND intended_delay_s > 0 AND change_type IS NULL
),
first_sent AS (
  SELECT *
  FROM `${PROJECT}.${DATASET}.all_events`
  WHERE change_type IS NULL
)
SELECT
  l.event_type,
  COUNT(*) AS late_events,
  COUNTIF(l.far_late) AS beyond_allowed_lateness,
  COUNTIF(t.event_id IS NOT NULL) AS found,
  COUNTIF(t.event_id IS NULL
          OR DATE(t.event_time) != DATE(l.event_time)
          OR TIMESTAMP_TRUNC(t.event_time, MINUTE) != TIMESTAMP_TRUNC(l.event_time, MINUTE)) AS failures,
  ARRAY_AGG(IF(t.event_id IS NULL OR TIMESTAMP_TRUNC(t.event_time, MINUTE) != TIMESTAMP_TRUNC(l.event_time, MINUTE),
               l.event_id, NULL) IGNORE NULLS) AS sample_misplaced_ids,
  MAX(TIMESTAMP_DIFF(t.ingest_time, t.event_time, SECOND)) AS max_lag_s
FROM late AS l
LEFT JOIN first_sent AS t
  ON t.event_id = l.event_id AND t.event_type = l.event_type
GROUP BY l.event_type
ORDER BY l.event_type;
