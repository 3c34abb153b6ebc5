-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.dq_daily_report` (
  day DATE NOT NULL OPTIONS(description="UTC day. Partitioning column."),
  rule STRING NOT NULL OPTIONS(description="The rule."),
  action STRING NOT NULL OPTIONS(description="excluded or flagged."),
  checked INT64 NOT NULL OPTIONS(description="Events the rule looked at that day."),
  quarantined INT64 NOT NULL OPTIONS(description="Events it caught."),
  built_at TIMESTAMP NOT NULL OPTIONS(description="When the row last changed.")
)
PARTITION BY day
CLUSTER BY rule
OPTIONS(description="Data-quality report: per UTC day and rule, events checked and quarantined. Built by python -m warehouse daily.");
