-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.producer_ledger` (
  run_id STRING NOT NULL OPTIONS(description="Simulator run."),
  event_id STRING NOT NULL OPTIONS(description="event_id attribute published (or the id the pipeline derives for a message without one)."),
  event_type STRING NOT NULL OPTIONS(description="Event type (or the claimed type of a malformed message)."),
  event_time TIMESTAMP NOT NULL OPTIONS(description="Event time in the payload."),
  first_publish_time TIMESTAMP OPTIONS(description="When the first copy was published."),
  publish_times ARRAY<TIMESTAMP> OPTIONS(description="When each copy was published."),
  intended_delay_s FLOAT64 NOT NULL OPTIONS(description="Delay the simulator meant to add between event time and publish."),
  copies INT64 NOT NULL OPTIONS(description="How many copies were published (more than 1 = duplicates on purpose)."),
  malformed BOOL NOT NULL OPTIONS(description="The message is malformed on purpose and must end in the dead-letter table."),
  malformed_kind STRING OPTIONS(description="Which kind of malformation."),
  too_late BOOL NOT NULL OPTIONS(description="Delayed beyond the pipeline's allowed lateness on purpose.")
)
PARTITION BY DATE(event_time)
CLUSTER BY run_id, event_type
OPTIONS(description="One row per logical event published by the simulator (loaded from its JSONL ledger).");
