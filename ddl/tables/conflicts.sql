-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.conflicts` (
  conflict_id STRING NOT NULL OPTIONS(description="Hash of (event_type, event_id, conflicting content hash): insertId, so a redelivered conflicting copy is one row."),
  detected_at TIMESTAMP NOT NULL OPTIONS(description="When the pipeline found the conflict. Partitioning column."),
  stage STRING NOT NULL OPTIONS(description="Which step found it: dedup (the job's identity memory) or files (a minute folder already holding the identity)."),
  event_type STRING NOT NULL OPTIONS(description="Event type."),
  event_id STRING NOT NULL OPTIONS(description="The shared identity."),
  event_time TIMESTAMP NOT NULL OPTIONS(description="Event time of the conflicting copy."),
  accepted_content_hash STRING NOT NULL OPTIONS(description="content_hash of the accepted copy."),
  conflicting_content_hash STRING NOT NULL OPTIONS(description="content_hash of this copy."),
  publish_time TIMESTAMP OPTIONS(description="Pub/Sub publish time of this copy."),
  payload STRING NOT NULL OPTIONS(description="This copy's event as a JSON line (the same shape as a file line).")
)
PARTITION BY DATE(detected_at)
CLUSTER BY event_type, event_id
OPTIONS(description="Same event identity, different content: the later copy, with both content hashes.");
