-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.dead_letter_replays` (
  replay_row_id STRING NOT NULL OPTIONS(description="Hash of (replay_id, dead_letter_id): the insertId."),
  replay_id STRING NOT NULL OPTIONS(description="One run of the replay command."),
  dead_letter_id STRING NOT NULL OPTIONS(description="The dead_letter row republished."),
  replayed_at TIMESTAMP NOT NULL OPTIONS(description="When Pub/Sub confirmed the publish. Partitioning column."),
  topic STRING NOT NULL OPTIONS(description="Where it went: projects/<p>/topics/<t>."),
  message_id STRING NOT NULL OPTIONS(description="The Pub/Sub message id of the republished copy."),
  stage STRING NOT NULL OPTIONS(description="The dead letter's stage."),
  error_type STRING NOT NULL OPTIONS(description="The dead letter's reason (error_type), as it was."),
  reason_for_replay STRING OPTIONS(description="What the operator said was fixed (--note).")
)
PARTITION BY DATE(replayed_at)
CLUSTER BY dead_letter_id
OPTIONS(description="Dead letters republished after a fix (python -m deadletters replay): which, when, to which topic.");
