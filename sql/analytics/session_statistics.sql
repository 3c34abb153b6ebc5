-- Sessions by platform: a user's session ends after 30 minutes without an
-- event (the brief's inactivity timeout), computed here from the events
-- themselves. Per platform: sessions, average events and duration, and how
-- many sessions added something to the cart.
WITH source AS (
  -- The *_dedup view's rule inline (one row per event_id): the BigQuery
  -- emulator cannot reach a STRUCT field through a view.
  SELECT a.user_id, a.event_time, a.activity_type, a.metadata.platform AS platform
  FROM `${PROJECT}.${DATASET}.user_activity_events` AS a
  WHERE a.event_time >= @start AND a.event_time < @end
  QUALIFY ROW_NUMBER() OVER (PARTITION BY a.event_id ORDER BY a.ingest_time, a.publish_time) = 1
),
ordered AS (
  SELECT *, LAG(event_time) OVER (PARTITION BY user_id ORDER BY event_time) AS previous_time
  FROM source
),
numbered AS (
  SELECT
    *,
    SUM(IF(previous_time IS NULL OR TIMESTAMP_DIFF(event_time, previous_time, SECOND) > 1800, 1, 0))
      OVER (PARTITION BY user_id ORDER BY event_time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session_no
  FROM ordered
),
sessions AS (
  SELECT
    user_id, session_no,
    ANY_VALUE(platform) AS platform,
    MIN(event_time) AS session_start,
    MAX(event_time) AS session_end,
    COUNT(*) AS events,
    COUNTIF(activity_type = 'add_to_cart') > 0 AS added_to_cart
  FROM numbered
  GROUP BY user_id, session_no
)
SELECT
  platform,
  COUNT(*) AS sessions,
  AVG(events) AS avg_events,
  AVG(TIMESTAMP_DIFF(session_end, session_start, SECOND)) AS avg_duration_s,
  COUNTIF(added_to_cart) AS sessions_with_cart
FROM sessions
GROUP BY platform
ORDER BY platform;
