-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.dead_letter` (
  dead_letter_id STRING NOT NULL OPTIONS(description="sha256 of stage, payload and attributes: insertId, so a redelivered bad message is one row."),
  received_at TIMESTAMP NOT NULL OPTIONS(description="When the pipeline rejected it. Partitioning column."),
  stage STRING NOT NULL OPTIONS(description="Where it was rejected: decode, parse, validate, bigquery_insert."),
  error_type STRING NOT NULL OPTIONS(description="Machine-readable reason, e.g. invalid_json, schema_mismatch, unknown_event_type."),
  error STRING NOT NULL OPTIONS(description="Human-readable reason."),
  event_type STRING OPTIONS(description="Event type claimed by the message (body or attribute, may be invalid), truncated."),
  event_id STRING OPTIONS(description="Event id claimed by the message (body or attribute, may be invalid), truncated."),
  publish_time TIMESTAMP OPTIONS(description="Pub/Sub publish time."),
  payload STRING OPTIONS(description="Raw payload decoded as UTF-8 with replacement characters (first 1 MiB)."),
  payload_base64 STRING OPTIONS(description="Raw payload bytes, base64, when it is not valid UTF-8 (first 1 MiB)."),
  payload_size INT64 NOT NULL OPTIONS(description="Size of the raw payload in bytes."),
  payload_sha256 STRING NOT NULL OPTIONS(description="sha256 of the raw payload bytes: the producer's ledger finds its malformed messages by it, with or without attributes."),
  attributes STRING OPTIONS(description="Pub/Sub attributes as a JSON object.")
)
PARTITION BY DATE(received_at)
CLUSTER BY stage, error_type, event_type
OPTIONS(description="Rejected messages with raw payload, attributes, stage and reason.");
