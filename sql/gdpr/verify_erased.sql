-- GDPR: rows that still name a data subject, per table (python -m gdpr verify;
-- run it as is with the query parameter `subject`, the user's or customer's
-- id). Every count must be 0 once an erasure is done. Metrics hold counts
-- only, dead_letter_replays and erasure_log hold no payload, erased_subjects
-- holds the id's sha256 (what the job needs to keep suppressing).
SELECT 'order_events' AS where_found, COUNT(*) AS rows_left
FROM `${PROJECT}.${DATASET}.order_events` WHERE customer_id = @subject
UNION ALL
SELECT 'user_activity_events', COUNT(*)
FROM `${PROJECT}.${DATASET}.user_activity_events` WHERE user_id = @subject
UNION ALL
SELECT 'alerts', COUNT(*) FROM `${PROJECT}.${DATASET}.alerts` WHERE user_id = @subject
UNION ALL
SELECT 'user_sessions', COUNT(*) FROM `${PROJECT}.${DATASET}.user_sessions` WHERE user_id = @subject
UNION ALL
SELECT 'producer_ledger', COUNT(*) FROM `${PROJECT}.${DATASET}.producer_ledger` WHERE user_id = @subject
UNION ALL
SELECT 'dim_customer', COUNT(*) FROM `${PROJECT}.${DATASET}.dim_customer` WHERE customer_id = @subject
UNION ALL
SELECT 'fact_order_events', COUNT(*) FROM `${PROJECT}.${DATASET}.fact_order_events` WHERE customer_id = @subject
UNION ALL
SELECT 'dq_quarantine', COUNT(*) FROM `${PROJECT}.${DATASET}.dq_quarantine`
WHERE STRPOS(IFNULL(row_json, ''), @subject) > 0
UNION ALL
SELECT 'dead_letter', COUNT(*) FROM `${PROJECT}.${DATASET}.dead_letter`
WHERE STRPOS(IFNULL(payload, ''), @subject) > 0 OR STRPOS(IFNULL(attributes, ''), @subject) > 0
UNION ALL
SELECT 'conflicts', COUNT(*) FROM `${PROJECT}.${DATASET}.conflicts` WHERE STRPOS(IFNULL(payload, ''), @subject) > 0
UNION ALL
SELECT 'erasure_log', COUNT(*) FROM `${PROJECT}.${DATASET}.erasure_log` WHERE STRPOS(IFNULL(details, ''), @subject) > 0;
