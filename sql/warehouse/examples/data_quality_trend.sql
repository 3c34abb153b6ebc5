-- Data quality: per day and rule, the share of events a rule caught
-- (dq_daily_report), worst first.
SELECT
  day,
  rule,
  action,
  checked,
  quarantined,
  SAFE_DIVIDE(quarantined, checked) AS quarantined_share
FROM `${PROJECT}.${DATASET}.dq_daily_report`
ORDER BY quarantined_share DESC, day, rule;
