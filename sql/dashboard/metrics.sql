-- The dashboard's per-minute metrics: the last N minutes (the query parameter `minutes`) of event
-- time that have metrics (relative to the newest minute, so a historical
-- dataset shows its own last half hour), from the view that keeps each
-- minute's current numbers.
SELECT minute, event_type, events, unique_users, unique_users_exact, duplicates, conflicts, dead_letters,
       late, far_late, lag_event_p50_ms, lag_event_p99_ms, lag_publish_p50_ms, lag_publish_p99_ms, is_final,
       complete
FROM `${PROJECT}.${DATASET}.metrics_per_minute_current`
WHERE minute >= TIMESTAMP_SUB(
  (SELECT MAX(minute) FROM `${PROJECT}.${DATASET}.metrics_per_minute_current`), INTERVAL @minutes MINUTE)
ORDER BY minute, event_type
