-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.dq_quarantine` (
  quarantine_id STRING NOT NULL OPTIONS(description="Hash of (rule, event_type, event_id)."),
  day DATE NOT NULL OPTIONS(description="UTC day of the event's event time. Partitioning column."),
  rule STRING NOT NULL OPTIONS(description="order_total_mismatch, order_status_backwards or negative_stock (sql/warehouse/dq_quarantine.sql)."),
  action STRING NOT NULL OPTIONS(description="excluded (left out of the daily tables and dimensions) or flagged (reported only)."),
  event_type STRING NOT NULL OPTIONS(description="The event's type."),
  event_id STRING NOT NULL OPTIONS(description="The event's identity."),
  entity_id STRING NOT NULL OPTIONS(description="What the rule is about: the order_id, or product_id/warehouse_id for stock."),
  event_time TIMESTAMP NOT NULL OPTIONS(description="Its event time."),
  detail STRING NOT NULL OPTIONS(description="What the rule saw (numbers, the earlier status)."),
  row_json STRING NOT NULL OPTIONS(description="The event's row as stored (JSON)."),
  built_at TIMESTAMP NOT NULL OPTIONS(description="When the row last changed.")
)
PARTITION BY day
CLUSTER BY rule, event_type
OPTIONS(description="Quarantined events: the rule, what it saw, the row as stored. Built by python -m warehouse daily; counts in dq_daily_report.");
