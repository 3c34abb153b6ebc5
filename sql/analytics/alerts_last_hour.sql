-- Anomaly alerts in the range (for the last hour: start = now - 1 hour),
-- newest first, with how long detection took (crossing event published ->
-- alert emitted).
SELECT
  minute,
  user_id,
  event_count,
  threshold,
  crossing_event_type,
  detected_at,
  TIMESTAMP_DIFF(detected_at, crossing_publish_time, MILLISECOND) AS detection_ms
FROM `${PROJECT}.${DATASET}.alerts_current`
WHERE minute >= @start AND minute < @end
ORDER BY minute DESC, user_id;
