-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.alerts` (
  alert_id STRING NOT NULL OPTIONS(description="Hash of (alert_type, user, minute): insertId and the Pub/Sub attribute alert_id."),
  alert_type STRING NOT NULL OPTIONS(description="user_burst: more than `threshold` events from one user in one minute."),
  user_id STRING NOT NULL OPTIONS(description="The user: user_activity.user_id or order.customer_id (one id space)."),
  minute TIMESTAMP NOT NULL OPTIONS(description="Start of the event-time minute. Partitioning column."),
  threshold INT64 NOT NULL OPTIONS(description="The threshold in force (--alert_threshold)."),
  event_count INT64 NOT NULL OPTIONS(description="Events of that user and minute when the alert fired (threshold + 1)."),
  crossing_event_type STRING NOT NULL OPTIONS(description="Type of the event that crossed the threshold."),
  crossing_event_id STRING NOT NULL OPTIONS(description="Identity of that event."),
  crossing_event_time TIMESTAMP NOT NULL OPTIONS(description="Its event time."),
  crossing_publish_time TIMESTAMP OPTIONS(description="Its Pub/Sub publish time (detection latency = detected_at - this)."),
  detected_at TIMESTAMP NOT NULL OPTIONS(description="When the job emitted the alert (processing time).")
)
PARTITION BY DATE(minute)
CLUSTER BY alert_type, user_id
OPTIONS(description="Anomaly alerts, one per (user, minute of event time); also published to the alerts topic.");
