-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.files_written` (
  file_id STRING NOT NULL OPTIONS(description="sha256 of path and content: insertId, so a retried record is one row."),
  event_type STRING NOT NULL OPTIONS(description="Event type (the folder's)."),
  minute TIMESTAMP NOT NULL OPTIONS(description="The folder's event-time minute. Partitioning column."),
  shard INT64 NOT NULL OPTIONS(description="Shard that wrote the file."),
  num_shards INT64 NOT NULL OPTIONS(description="Shards writing the folder."),
  seq INT64 NOT NULL OPTIONS(description="NNNN of the file name."),
  path STRING NOT NULL OPTIONS(description="Full path of the file."),
  lines INT64 NOT NULL OPTIONS(description="Events in the file."),
  sha256 STRING NOT NULL OPTIONS(description="sha256 of the file's bytes."),
  timing STRING NOT NULL OPTIONS(description="on_time (the watermark passed the minute's end), late (within the allowed lateness), far_late (after it, the folder read back), recovered (written before a crash, found missing from the manifest when the folder was read back), or backfill (written by python -m backfill)."),
  written_at TIMESTAMP NOT NULL OPTIONS(description="When the job wrote it.")
)
PARTITION BY DATE(minute)
CLUSTER BY event_type, minute
OPTIONS(description="Every file written in the brief's layout, with its line count: the job's per-minute counts.");
