-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.producer_ledger` (
  run_id STRING NOT NULL OPTIONS(description="Simulator run."),
  event_id STRING OPTIONS(description="Identity the pipeline computes for this event (schemas/contract.py); NULL for a malformed message that has none."),
  event_type STRING NOT NULL OPTIONS(description="Event type (or the claimed type of a malformed message)."),
  event_time TIMESTAMP NOT NULL OPTIONS(description="Event time in the payload."),
  content_hash STRING OPTIONS(description="Canonical content hash (schemas/contract.py); reconciliation recomputes it from each stored row and file line. NULL for malformed messages."),
  payload_sha256 STRING NOT NULL OPTIONS(description="sha256 of the published bytes: how a malformed message is found in dead_letter without any attribute."),
  first_publish_time TIMESTAMP OPTIONS(description="When the first copy was published."),
  publish_times ARRAY<TIMESTAMP> OPTIONS(description="When each copy was published (the publish call)."),
  confirmed_times ARRAY<TIMESTAMP> OPTIONS(description="When Pub/Sub confirmed each copy: its publish time, as Pub/Sub stamped it, lies between the call and the confirmation."),
  failed_attempt_times ARRAY<TIMESTAMP> OPTIONS(description="Publish attempts that failed on the producer's side and were retried. Pub/Sub may have published such an attempt anyway (a timeout after it accepted the message): the job then sees one more copy, stamped at or after that time."),
  intended_delay_s FLOAT64 NOT NULL OPTIONS(description="Delay the simulator meant to add between event time and publish."),
  copies INT64 NOT NULL OPTIONS(description="How many copies were published (more than 1 = duplicates on purpose)."),
  malformed BOOL NOT NULL OPTIONS(description="The message is malformed on purpose and must end in the dead-letter table."),
  malformed_kind STRING OPTIONS(description="Which kind of malformation."),
  far_late BOOL NOT NULL OPTIONS(description="Delayed beyond the job's allowed lateness on purpose: it must still land in the folder of its event time."),
  conflict BOOL NOT NULL OPTIONS(description="Same identity as an earlier message of the run with a different content: it must land in the conflicts table, not in the event tables."),
  extra_fields ARRAY<STRING> OPTIONS(description="Fields the schema does not know, added on purpose (schema evolution): the event must still land, with them in extra."),
  user_id STRING OPTIONS(description="Whose event it is (user_activity.user_id or order.customer_id; NULL for inventory and malformed messages): expected anomaly alerts are counted by it."),
  bot BOOL NOT NULL OPTIONS(description="Part of a burst from one user published on purpose (the bot fault): the anomaly alert must fire."),
  change_type STRING OPTIONS(description="correction, invalidation or deletion: this message changes the event event_id (seed 002); NULL for an event as first sent."),
  changed_at TIMESTAMP OPTIONS(description="The change's changed_at (the order of versions)."),
  entity STRING OPTIONS(description="The event's entity (schemas.contract.entity_key): what a deletion removes (an order: order_id).")
)
PARTITION BY DATE(event_time)
CLUSTER BY run_id, event_type
OPTIONS(description="One row per distinct message body published by the simulator (loaded from its JSONL ledger).");
