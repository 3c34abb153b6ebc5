-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.user_activity_events` (
  event_id STRING NOT NULL OPTIONS(description="Producer's unique id of the logical event (Pub/Sub attribute event_id), or sha256 of the content when absent. insertId of the streaming insert."),
  event_time TIMESTAMP NOT NULL OPTIONS(description="Event time taken from the payload. Partitioning column."),
  publish_time TIMESTAMP OPTIONS(description="Pub/Sub publish time of the copy that was kept."),
  ingest_time TIMESTAMP NOT NULL OPTIONS(description="When the pipeline processed the event (processing time)."),
  source STRING NOT NULL OPTIONS(description="stream or backfill: which path wrote the row (lineage)."),
  user_id STRING NOT NULL OPTIONS(description="User identifier (personal data: see GDPR deletion)."),
  activity_type STRING NOT NULL OPTIONS(description="What the user did."),
  ip_address STRING NOT NULL OPTIONS(description="Client IP address (personal data)."),
  user_agent STRING NOT NULL OPTIONS(description="Client user agent."),
  timestamp TIMESTAMP NOT NULL OPTIONS(description="When the action happened: the event time (RFC 3339)."),
  metadata STRUCT<session_id STRING NOT NULL, platform STRING NOT NULL, product_id STRING> NOT NULL OPTIONS(description="Session context.")
)
PARTITION BY DATE(event_time)
CLUSTER BY user_id, activity_type
OPTIONS(description="Every user action as its own row.");
