-- The dashboard's alerts: those of the same window of event time as the
-- metrics, newest first.
SELECT alert_id, user_id, minute, event_count, threshold, crossing_event_type, detected_at
FROM `${PROJECT}.${DATASET}.alerts_current`
WHERE minute >= TIMESTAMP_SUB(
  (SELECT MAX(minute) FROM `${PROJECT}.${DATASET}.metrics_per_minute_current`), INTERVAL @minutes MINUTE)
ORDER BY detected_at DESC, alert_id
LIMIT 100
