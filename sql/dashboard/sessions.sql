-- The dashboard's sessions: sessions that started in the same window of event
-- time as the metrics, closed or updated so far.
SELECT COUNT(*) AS sessions, COUNTIF(converted) AS converted, AVG(duration_s) AS avg_duration_s,
       AVG(event_count) AS avg_events
FROM `${PROJECT}.${DATASET}.user_sessions_current`
WHERE session_start >= TIMESTAMP_SUB(
  (SELECT MAX(minute) FROM `${PROJECT}.${DATASET}.metrics_per_minute_current`), INTERVAL @minutes MINUTE)
