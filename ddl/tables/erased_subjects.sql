-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.erased_subjects` (
  subject_hash STRING NOT NULL OPTIONS(description="sha256 of the id (schemas.contract.subject_hash): the job recognises the subject without keeping who they are."),
  erased_at TIMESTAMP NOT NULL OPTIONS(description="When the erasure was requested. Partitioning column."),
  request_id STRING NOT NULL OPTIONS(description="The erasure request (erasure_log.request_id).")
)
PARTITION BY DATE(erased_at)
CLUSTER BY subject_hash
OPTIONS(description="sha256 of erased users' and customers' ids: the job suppresses their later events.");
