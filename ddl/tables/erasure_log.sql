-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.erasure_log` (
  log_id STRING NOT NULL OPTIONS(description="Hash of (request_id, step, logged_at): the insertId."),
  request_id STRING NOT NULL OPTIONS(description="The erasure request (--request-id, or a new id)."),
  requested_at TIMESTAMP NOT NULL OPTIONS(description="When the request was first run."),
  logged_at TIMESTAMP NOT NULL OPTIONS(description="When this row was written. Partitioning column."),
  step STRING NOT NULL OPTIONS(description="suppressed (added to erased_subjects), a table's name (rows deleted), files (lines removed), metrics (counts adjusted), pending (left for a later run) or done."),
  removed INT64 NOT NULL OPTIONS(description="Rows, or file lines, removed in this step."),
  details STRING OPTIONS(description="What else the step says (files rewritten or deleted, folders still open, why something is pending): never an id.")
)
PARTITION BY DATE(logged_at)
CLUSTER BY request_id
OPTIONS(description="Erasure requests: counts of what was removed from each table and from the files, and what is pending.");
