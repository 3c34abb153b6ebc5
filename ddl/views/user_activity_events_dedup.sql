-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
-- One row per event_id: its latest version, first copy ingested. The table
-- keeps every version (the event as first sent, then corrections,
-- invalidations, deletions, ordered by changed_at); an event whose latest
-- version is an invalidation is hidden, and so is every event of an entity
-- a deletion removed. Streaming inserts dedup by insertId only on a
-- best-effort basis, and a redelivery after the job's dedup horizon passes
-- the job, so exact dedup happens here at query time. The CTEs are named
-- after the table: a query reading two of these views stays unambiguous
-- where views are inlined by name (the BigQuery emulator).
CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.user_activity_events_dedup` AS
WITH user_activity_events_latest AS (
  SELECT *
  FROM `${PROJECT}.${DATASET}.user_activity_events`
  WHERE TRUE
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id
                             ORDER BY changed_at DESC NULLS LAST, ingest_time, publish_time) = 1
),
user_activity_events_deleted AS (
  SELECT DISTINCT event_id AS entity
  FROM `${PROJECT}.${DATASET}.user_activity_events`
  WHERE change_type = 'deletion'
)
SELECT *
FROM user_activity_events_latest
WHERE IFNULL(change_type, '') NOT IN ('invalidation', 'deletion')
  AND event_id NOT IN (SELECT entity FROM user_activity_events_deleted);
