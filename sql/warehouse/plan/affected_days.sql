-- The UTC days the warehouse must rebuild after rows arrived since a time
-- (query parameter since): from the earliest event date among the rows
-- ingested since then (late events, corrections, deletions, a backfill) to
-- the newest event date in the tables. Every day in between is rebuilt too,
-- because running values (stock at the end of a day, the stock and status
-- rules) carry from one day to the next.
WITH arrived AS (
  -- every day of an order a row arrived for: a deletion or a correction sent
  -- with one status event changes the order's other days too
  SELECT DATE(o.event_time) AS day FROM `${PROJECT}.${DATASET}.order_events` AS o
  WHERE o.order_id IN (SELECT a.order_id FROM `${PROJECT}.${DATASET}.order_events` AS a WHERE a.ingest_time >= @since)
  UNION ALL
  SELECT DATE(event_time) FROM `${PROJECT}.${DATASET}.inventory_events` WHERE ingest_time >= @since
  UNION ALL
  SELECT DATE(event_time) FROM `${PROJECT}.${DATASET}.user_activity_events` WHERE ingest_time >= @since
  UNION ALL
  SELECT DATE(session_start) FROM `${PROJECT}.${DATASET}.user_sessions` WHERE emitted_at >= @since
),
newest AS (
  SELECT MAX(day) AS day FROM (
    SELECT MAX(DATE(event_time)) AS day FROM `${PROJECT}.${DATASET}.order_events`
    UNION ALL
    SELECT MAX(DATE(event_time)) FROM `${PROJECT}.${DATASET}.inventory_events`
    UNION ALL
    SELECT MAX(DATE(event_time)) FROM `${PROJECT}.${DATASET}.user_activity_events`)
)
SELECT (SELECT MIN(day) FROM arrived) AS first_day, (SELECT day FROM newest) AS last_day
