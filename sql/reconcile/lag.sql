-- Lag (ingest time - event time) of every event of the scope, for the report.
SELECT
  t.event_type,
  l.intended_delay_s > 0 AS delayed,
  TIMESTAMP_DIFF(t.ingest_time, t.event_time, MILLISECOND) / 1000.0 AS lag_s
FROM `${PROJECT}.${DATASET}.all_events_dedup` AS t
JOIN `${PROJECT}.${DATASET}.producer_ledger` AS l USING (event_type, event_id)
WHERE (@run_id = '' OR l.run_id = @run_id)
  AND l.event_time >= @start AND l.event_time < @end
  AND NOT l.malformed AND NOT l.conflict;
