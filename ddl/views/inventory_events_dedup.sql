-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
-- One row per event_id: the first copy ingested. Streaming inserts dedup by
-- insertId only on a best-effort basis, and a redelivery after the job's dedup
-- horizon passes the job, so exact dedup happens here at query time.
CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.inventory_events_dedup` AS
SELECT *
FROM `${PROJECT}.${DATASET}.inventory_events`
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingest_time, publish_time) = 1;
