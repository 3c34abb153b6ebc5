-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.user_activity_events` (
  event_id STRING NOT NULL OPTIONS(description="Identity of the logical event (schemas/contract.py): an explicit event_id when the producer sends one, else inventory_id, order_id:status, or sha256:<content hash> for user activity."),
  event_time TIMESTAMP NOT NULL OPTIONS(description="Event time taken from the payload (UTC). Partitioning column."),
  content_hash STRING NOT NULL OPTIONS(description="Hash of the event's canonical content (schemas/contract.py content_hash). Two copies with the same event_id and different content_hash are a conflict."),
  extra JSON OPTIONS(description="Fields the schema does not know yet (schema evolution), at their place in the event; NULL when none."),
  publish_time TIMESTAMP OPTIONS(description="Pub/Sub publish time of the copy that was kept."),
  ingest_time TIMESTAMP NOT NULL OPTIONS(description="When the pipeline processed the event (processing time)."),
  source STRING NOT NULL OPTIONS(description="stream or backfill: which path wrote the row (lineage)."),
  change_type STRING OPTIONS(description="NULL for an event as first sent; correction, invalidation or deletion for a change of it (seed 002). The *_dedup views show each event's latest version, hide invalidated events and the events of deleted entities; this table keeps every version."),
  changed_at TIMESTAMP OPTIONS(description="When the producer made the change: the order of an event's versions. NULL for the event as first sent."),
  change_reason STRING OPTIONS(description="Why, as the producer said (optional)."),
  user_id STRING NOT NULL OPTIONS(description="User identifier (a uuid in the brief; personal data, see GDPR)."),
  activity_type STRING NOT NULL OPTIONS(description="What the user did."),
  ip_address STRING NOT NULL OPTIONS(description="Client IP address as sent (personal data)."),
  user_agent STRING NOT NULL OPTIONS(description="Client user agent."),
  timestamp TIMESTAMP NOT NULL OPTIONS(description="When the action happened: the event time."),
  metadata STRUCT<session_id STRING NOT NULL, platform STRING NOT NULL, product_id STRING> NOT NULL OPTIONS(description="Session context.")
)
PARTITION BY DATE(event_time)
CLUSTER BY user_id, activity_type
OPTIONS(description="Every user action as its own row.");
