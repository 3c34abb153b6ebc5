-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
-- Envelope columns of every event table in one relation,
-- for reconciliation and cross-type queries.
CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.all_events` AS
SELECT 'inventory' AS event_type, event_id, event_time, content_hash, extra, publish_time, ingest_time, source, change_type, changed_at, change_reason
FROM `${PROJECT}.${DATASET}.inventory_events`
UNION ALL
SELECT 'order' AS event_type, event_id, event_time, content_hash, extra, publish_time, ingest_time, source, change_type, changed_at, change_reason
FROM `${PROJECT}.${DATASET}.order_events`
UNION ALL
SELECT 'user_activity' AS event_type, event_id, event_time, content_hash, extra, publish_time, ingest_time, source, change_type, changed_at, change_reason
FROM `${PROJECT}.${DATASET}.user_activity_events`;
