-- One row per alert: (alert type, user, minute of event time). The job alerts
-- once per (user, minute) while it remembers that minute, and the insertId is
-- the alert id; a far-late burst after the minute was forgotten, or a retried
-- insert that BigQuery's best-effort insertId did not catch, can add a second
-- row with the same alert_id: the first detection is kept.
CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.alerts_current` AS
SELECT *
FROM `${PROJECT}.${DATASET}.alerts`
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (PARTITION BY alert_id ORDER BY detected_at, crossing_event_id) = 1
