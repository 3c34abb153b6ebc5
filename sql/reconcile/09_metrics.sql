-- 9. Per-minute metrics (the view metrics_per_minute_current, written by the
-- job as it runs) agree with what the job stored and what the producer sent,
-- in every (minute, type) where the ledger has events:
--   events       = events of that minute and type in the dedup views (every
--                  run: the job counts what it stores; check 4 proves the run's
--                  events are the ledger's);
--   unique_users = distinct users among them (the user field of each schema:
--                  order.customer_id, user_activity.user_id; none for inventory),
--                  or at least that many when two generations counted them
--                  (unique_users_exact = false: a user seen by both is in both);
--   late, far_late between the counts by the earliest and by the latest time
--                  Pub/Sub can have stamped a copy of the accepted content
--                  (the job sees one of its copies; a copy is stamped between
--                  the producer's call and its confirmation, and an attempt
--                  the producer saw fail may have been published too), with
--                  the allowed lateness the job ran with;
--   duplicates, conflicts at least the ledger's (Pub/Sub may deliver a copy
--                  more than once; each delivery is counted);
-- and dead letters at least the ledger's malformed copies in each minute of
-- publish time, summed over types (a malformed body may not say its type).
-- A (minute, type) the view marks complete = false (a job stopped or was
-- killed while the minute was open and its state was lost, which Dataflow's
-- durable state does not do; see pipeline/metrics.py) is shown with
-- metrics_complete = false and held to nothing but existing.
WITH ledger AS (
  SELECT *
  FROM `${PROJECT}.${DATASET}.producer_ledger`
  WHERE (@run_id = '' OR run_id = @run_id)
    AND event_time >= @start AND event_time < @end
),
-- The (minute, type) cells of the run. The job counts everything of a cell,
-- so the producer's side is every run of the ledger in those cells (other
-- runs' events can share a minute: far-late events are back-dated).
cells AS (
  SELECT DISTINCT TIMESTAMP_TRUNC(event_time, MINUTE) AS minute, event_type
  FROM ledger
  WHERE NOT malformed
),
ledger_in_cells AS (
  SELECT l.*
  FROM `${PROJECT}.${DATASET}.producer_ledger` AS l
  JOIN cells AS c
    ON TIMESTAMP_TRUNC(l.event_time, MINUTE) = c.minute AND l.event_type = c.event_type
  WHERE NOT l.malformed AND l.change_type IS NULL  -- the metrics count events as first sent
),
accepted AS (
  SELECT event_type, event_id, TIMESTAMP_TRUNC(event_time, MINUTE) AS minute, copies,
         LEAST((SELECT MIN(p) FROM UNNEST(publish_times) AS p),
               IFNULL((SELECT MIN(p) FROM UNNEST(failed_attempt_times) AS p), TIMESTAMP '9999-12-31')) AS first_publish,
         GREATEST((SELECT MAX(p) FROM UNNEST(publish_times) AS p),
                  IFNULL((SELECT MAX(p) FROM UNNEST(confirmed_times) AS p), TIMESTAMP '0001-01-01')) AS last_publish
  FROM ledger_in_cells
  WHERE NOT conflict
),
expected AS (
  SELECT minute, event_type,
         SUM(copies - 1) AS duplicates,
         COUNTIF(first_publish > TIMESTAMP_ADD(minute, INTERVAL 60 SECOND)
                 AND first_publish <= TIMESTAMP_ADD(minute, INTERVAL 60 + @allowed_lateness_s SECOND)) AS late_first,
         COUNTIF(last_publish > TIMESTAMP_ADD(minute, INTERVAL 60 SECOND)
                 AND last_publish <= TIMESTAMP_ADD(minute, INTERVAL 60 + @allowed_lateness_s SECOND)) AS late_last,
         COUNTIF(first_publish > TIMESTAMP_ADD(minute, INTERVAL 60 + @allowed_lateness_s SECOND)) AS far_late_first,
         COUNTIF(last_publish > TIMESTAMP_ADD(minute, INTERVAL 60 + @allowed_lateness_s SECOND)) AS far_late_last
  FROM accepted
  GROUP BY minute, event_type
),
conflicting AS (
  SELECT TIMESTAMP_TRUNC(event_time, MINUTE) AS minute, event_type, SUM(copies) AS conflicts
  FROM ledger_in_cells
  WHERE conflict
  GROUP BY minute, event_type
),
stored_users AS (
  SELECT 'order' AS event_type, event_id, event_time, customer_id AS user_id
  FROM `${PROJECT}.${DATASET}.order_events` WHERE change_type IS NULL
  UNION ALL
  SELECT 'user_activity', event_id, event_time, user_id
  FROM `${PROJECT}.${DATASET}.user_activity_events` WHERE change_type IS NULL
  UNION ALL
  SELECT 'inventory', event_id, event_time, CAST(NULL AS STRING)
  FROM `${PROJECT}.${DATASET}.inventory_events` WHERE change_type IS NULL
),
stored AS (
  SELECT TIMESTAMP_TRUNC(event_time, MINUTE) AS minute, event_type, COUNT(DISTINCT event_id) AS events,
         COUNT(DISTINCT user_id) AS users
  FROM stored_users
  WHERE TIMESTAMP_TRUNC(event_time, MINUTE) IN (SELECT minute FROM expected)
  GROUP BY minute, event_type
),
metrics AS (
  SELECT * FROM `${PROJECT}.${DATASET}.metrics_per_minute_current`
  WHERE minute IN (SELECT minute FROM expected)
),
per_type AS (
  SELECT
    e.minute, e.event_type,
    s.events AS stored_events, m.events AS metrics_events,
    IF(e.event_type = 'inventory', NULL, s.users) AS stored_users, m.unique_users AS metrics_users,
    e.late_first, e.late_last, m.late AS metrics_late,
    e.far_late_first, e.far_late_last, m.far_late AS metrics_far_late,
    e.duplicates AS ledger_duplicates, m.duplicates AS metrics_duplicates,
    COALESCE(c.conflicts, 0) AS ledger_conflicts, m.conflicts AS metrics_conflicts,
    m.complete AS metrics_complete,
    IF(m.minute IS NULL OR (m.complete AND (
       m.events != s.events
       -- users seen by two generations are counted in both: then the sum is an upper bound
       OR (m.unique_users_exact AND IFNULL(m.unique_users, -1) != IFNULL(IF(e.event_type = 'inventory', NULL, s.users), -1))
       OR (NOT m.unique_users_exact AND m.unique_users < s.users)
       OR m.late < LEAST(e.late_first, e.late_last) OR m.late > GREATEST(e.late_first, e.late_last)
       OR m.far_late < LEAST(e.far_late_first, e.far_late_last)
       OR m.far_late > GREATEST(e.far_late_first, e.far_late_last)
       OR m.duplicates < e.duplicates
       OR m.conflicts < COALESCE(c.conflicts, 0))), 1, 0) AS failures
  FROM expected AS e
  LEFT JOIN stored AS s USING (minute, event_type)
  LEFT JOIN metrics AS m USING (minute, event_type)
  LEFT JOIN conflicting AS c USING (minute, event_type)
),
malformed_copies AS (
  -- copies of a message whose every possible publish time falls in one minute
  -- (the others cannot be pinned to a minute)
  SELECT TIMESTAMP_TRUNC(p, MINUTE) AS minute, COUNT(*) AS copies
  FROM ledger, UNNEST(publish_times) AS p
  WHERE malformed
    AND TIMESTAMP_TRUNC(LEAST((SELECT MIN(q) FROM UNNEST(publish_times) AS q),
                              IFNULL((SELECT MIN(q) FROM UNNEST(failed_attempt_times) AS q), TIMESTAMP '9999-12-31')),
                        MINUTE)
        = TIMESTAMP_TRUNC(GREATEST((SELECT MAX(q) FROM UNNEST(publish_times) AS q),
                                   IFNULL((SELECT MAX(q) FROM UNNEST(confirmed_times) AS q), TIMESTAMP '0001-01-01')),
                          MINUTE)
  GROUP BY minute
),
dead AS (
  SELECT minute, SUM(dead_letters) AS dead_letters, LOGICAL_AND(complete) AS complete
  FROM `${PROJECT}.${DATASET}.metrics_per_minute_current`
  GROUP BY minute
)
SELECT minute, event_type, stored_events, metrics_events, stored_users, metrics_users, late_first, late_last,
       metrics_late, far_late_first, far_late_last, metrics_far_late, ledger_duplicates, metrics_duplicates,
       ledger_conflicts, metrics_conflicts, CAST(NULL AS INT64) AS ledger_malformed_copies,
       CAST(NULL AS INT64) AS metrics_dead_letters, metrics_complete, failures
FROM per_type
UNION ALL
SELECT f.minute, '(dead letters, every type)', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, f.copies, COALESCE(d.dead_letters, 0), d.complete,
       IF(COALESCE(d.complete, TRUE) AND COALESCE(d.dead_letters, 0) < f.copies, 1, 0)
FROM malformed_copies AS f
LEFT JOIN dead AS d USING (minute)
ORDER BY minute, event_type;
