-- 8. Anomaly alerts: every (user, minute of event time) in which the producer
-- published more than `threshold` distinct events of one user has exactly one
-- row in the alerts table, and no other (user, minute) of the run's users has
-- any. The producer's count is of distinct identities (the job counts after
-- its dedup) of events that are neither malformed nor conflicting copies.
WITH ledger AS (
  SELECT DISTINCT event_type, event_id, user_id, TIMESTAMP_TRUNC(event_time, MINUTE) AS minute
  FROM `${PROJECT}.${DATASET}.producer_ledger`
  WHERE (@run_id = '' OR run_id = @run_id)
    AND event_time >= @start AND event_time < @end
    AND NOT malformed AND NOT conflict AND user_id IS NOT NULL AND change_type IS NULL
),
expected AS (
  SELECT user_id, minute, COUNT(*) AS events
  FROM ledger
  GROUP BY user_id, minute
  HAVING COUNT(*) > @threshold
),
fired AS (
  SELECT a.user_id, a.minute, COUNT(*) AS alerts
  FROM `${PROJECT}.${DATASET}.alerts` AS a
  WHERE a.minute >= TIMESTAMP_TRUNC(@start, MINUTE) AND a.minute < @end
    AND a.user_id IN (SELECT user_id FROM ledger)
  GROUP BY a.user_id, a.minute
),
joined AS (
  SELECT COALESCE(e.user_id, f.user_id) AS user_id, COALESCE(e.minute, f.minute) AS minute,
         e.events, COALESCE(f.alerts, 0) AS alerts
  FROM expected AS e
  FULL OUTER JOIN fired AS f ON f.user_id = e.user_id AND f.minute = e.minute
)
SELECT
  COUNTIF(events IS NOT NULL AND alerts != 1) + COUNTIF(events IS NULL) AS failures,
  COUNTIF(events IS NOT NULL) AS expected_alerts,
  COUNTIF(events IS NOT NULL AND alerts = 1) AS fired_once,
  COUNTIF(events IS NOT NULL AND alerts = 0) AS missed,
  COUNTIF(events IS NOT NULL AND alerts > 1) AS fired_more_than_once,
  COUNTIF(events IS NULL) AS unexpected,
  ARRAY_AGG(IF(events IS NULL OR alerts != 1, CONCAT(user_id, '@', CAST(minute AS STRING)), NULL) IGNORE NULLS)
    AS sample_wrong
FROM joined;
