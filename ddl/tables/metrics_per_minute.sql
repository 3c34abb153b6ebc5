-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.metrics_per_minute` (
  metrics_id STRING NOT NULL OPTIONS(description="Hash of (event_type, minute, generation, version): the insertId."),
  minute TIMESTAMP NOT NULL OPTIONS(description="Start of the event-time minute (dead letters: of their publish time). Partitioning column."),
  event_type STRING NOT NULL OPTIONS(description="order, inventory, user_activity, or unknown (dead letters without a known type)."),
  generation STRING NOT NULL OPTIONS(description="One lifetime of the job's state for this minute and type; a far-late arrival or a restart starts another."),
  version INT64 NOT NULL OPTIONS(description="1, 2, ... within the generation; each version is the complete count so far."),
  is_final BOOL NOT NULL OPTIONS(description="Written when the watermark passed the minute's end plus the allowed lateness (the generation's last version)."),
  events INT64 NOT NULL OPTIONS(description="Deduplicated events of this type with event time in the minute."),
  unique_users INT64 OPTIONS(description="Distinct users among them (exact within the generation); null for types without a user."),
  duplicates INT64 NOT NULL OPTIONS(description="Copies dropped by the dedup memory (same identity, same content)."),
  conflicts INT64 NOT NULL OPTIONS(description="Copies with an accepted identity and another content (every stage; see the conflicts table)."),
  dead_letters INT64 NOT NULL OPTIONS(description="Dead letters counted in this minute (of their publish time)."),
  dead_letter_reasons ARRAY<STRUCT<reason STRING NOT NULL, count INT64 NOT NULL>> OPTIONS(description="Dead letters by reason."),
  late INT64 NOT NULL OPTIONS(description="Events published after the minute's end, within the allowed lateness (the producer's lateness; files_written.timing follows the watermark)."),
  far_late INT64 NOT NULL OPTIONS(description="Events published after the minute's end plus the allowed lateness."),
  lag_event_p50_ms INT64 OPTIONS(description="Median event time -> ingest, ms (within 9%)."),
  lag_event_p90_ms INT64 OPTIONS(description="p90 event time -> ingest, ms."),
  lag_event_p99_ms INT64 OPTIONS(description="p99 event time -> ingest, ms."),
  lag_publish_p50_ms INT64 OPTIONS(description="Median Pub/Sub publish -> ingest, ms."),
  lag_publish_p90_ms INT64 OPTIONS(description="p90 publish -> ingest, ms."),
  lag_publish_p99_ms INT64 OPTIONS(description="p99 publish -> ingest, ms."),
  emitted_at TIMESTAMP NOT NULL OPTIONS(description="When the job wrote this version (processing time)."),
  job_incarnation STRING OPTIONS(description="The job graph that wrote this version: a random id made when the graph is built (one per local process, one per Dataflow job or update). A generation without a final row whose last version an older incarnation wrote lost its state when that job stopped (metrics_per_minute_current.complete).")
)
PARTITION BY DATE(minute)
CLUSTER BY event_type
OPTIONS(description="Per-minute metrics by event type (versions; read metrics_per_minute_current).");
