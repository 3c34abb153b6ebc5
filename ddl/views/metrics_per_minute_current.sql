-- One row per (minute, event_type): the job's per-minute metrics as they stand.
-- The table holds versions (pipeline/metrics.py): each version of a
-- (minute, event_type, generation) is the complete count of that generation
-- so far, so only the highest version counts. A generation is one lifetime of
-- the job's state for the minute (a far-late arrival or a restart starts
-- another, counting only what came since): their counts add up. Distinct
-- users cannot be added across generations without double counting a user
-- seen in two, so their sum is an upper bound, flagged by unique_users_exact.
-- The lag percentiles are those of the generation with the most events.
-- A generation lost its state when it has no final row and its last version
-- was written by a job incarnation older than the newest one (the job was
-- cancelled, stopped or killed while the minute was open: what it counted
-- since its last version is gone); then `complete` is false for the
-- (minute, event_type). See pipeline/metrics.py.
CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.metrics_per_minute_current` AS
WITH newest_incarnation AS (
  SELECT job_incarnation
  FROM `${PROJECT}.${DATASET}.metrics_per_minute`
  WHERE job_incarnation IS NOT NULL
  QUALIFY ROW_NUMBER() OVER (ORDER BY emitted_at DESC, job_incarnation) = 1
),
last_version AS (
  -- One row per (minute, type, generation): its highest version (a second
  -- copy of a row, a retried insert BigQuery's insertId did not catch, is
  -- the same row: the tie is broken arbitrarily).
  SELECT *
  FROM `${PROJECT}.${DATASET}.metrics_per_minute`
  WHERE TRUE
  QUALIFY ROW_NUMBER() OVER (PARTITION BY minute, event_type, generation ORDER BY version DESC, emitted_at) = 1
),
generations AS (
  SELECT *, NOT is_final AND IFNULL(job_incarnation, '') NOT IN (SELECT job_incarnation FROM newest_incarnation)
            AS state_lost
  FROM last_version
),
every_reason AS (
  SELECT DISTINCT m.metrics_id, m.minute, m.event_type, r.reason, r.count
  FROM `${PROJECT}.${DATASET}.metrics_per_minute` AS m, UNNEST(m.dead_letter_reasons) AS r
),
reasons AS (
  SELECT minute, event_type, reason, SUM(count) AS count
  FROM every_reason
  WHERE metrics_id IN (SELECT metrics_id FROM last_version)
  GROUP BY minute, event_type, reason
),
largest AS (
  SELECT minute, event_type, lag_event_p50_ms, lag_event_p90_ms, lag_event_p99_ms,
         lag_publish_p50_ms, lag_publish_p90_ms, lag_publish_p99_ms
  FROM last_version
  WHERE TRUE
  QUALIFY ROW_NUMBER() OVER (PARTITION BY minute, event_type ORDER BY events DESC, generation) = 1
),
totals AS (
  SELECT minute, event_type,
         SUM(events) AS events,
         SUM(unique_users) AS unique_users,
         COUNTIF(unique_users > 0) <= 1 AS unique_users_exact,
         SUM(duplicates) AS duplicates,
         SUM(conflicts) AS conflicts,
         SUM(dead_letters) AS dead_letters,
         SUM(late) AS late,
         SUM(far_late) AS far_late,
         LOGICAL_AND(is_final) AS is_final,
         COUNT(*) AS generations,
         NOT LOGICAL_OR(state_lost) AS complete,
         MAX(emitted_at) AS updated_at
  FROM generations
  GROUP BY minute, event_type
)
SELECT t.minute, t.event_type, t.events, t.unique_users, t.unique_users_exact, t.duplicates, t.conflicts,
       t.dead_letters,
       ARRAY(SELECT AS STRUCT r.reason, r.count FROM reasons AS r
             WHERE r.minute = t.minute AND r.event_type = t.event_type ORDER BY r.reason) AS dead_letter_reasons,
       t.late, t.far_late,
       g.lag_event_p50_ms, g.lag_event_p90_ms, g.lag_event_p99_ms,
       g.lag_publish_p50_ms, g.lag_publish_p90_ms, g.lag_publish_p99_ms,
       t.is_final, t.generations, t.complete, t.updated_at
FROM totals AS t
JOIN largest AS g USING (minute, event_type)
