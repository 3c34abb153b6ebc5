-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.user_sessions` (
  row_id STRING NOT NULL OPTIONS(description="Hash of (session_id, window end, version): the insertId."),
  session_id STRING NOT NULL OPTIONS(description="Hash of (user, window start). A merge with an earlier session gives the merged one the earlier start's id."),
  user_id STRING NOT NULL OPTIONS(description="The user: user_activity.user_id or order.customer_id (one id space)."),
  session_start TIMESTAMP NOT NULL OPTIONS(description="Event time of the session's first event. Partitioning column."),
  session_end TIMESTAMP NOT NULL OPTIONS(description="Event time of its last event."),
  duration_s FLOAT64 NOT NULL OPTIONS(description="session_end - session_start, seconds."),
  event_count INT64 NOT NULL OPTIONS(description="Events in the session (user_activity and order events)."),
  activity_counts ARRAY<STRUCT<activity STRING NOT NULL, count INT64 NOT NULL>> OPTIONS(description="The mix of activities."),
  platform STRING OPTIONS(description="The platform most used in the session (metadata.platform); null when only orders."),
  converted BOOL NOT NULL OPTIONS(description="An add_to_cart followed (in event time, within the session) by an order of the same customer."),
  window_start TIMESTAMP NOT NULL OPTIONS(description="The Beam session window: session_start."),
  window_end TIMESTAMP NOT NULL OPTIONS(description="session_end + the gap: when the session closes."),
  gap_s INT64 NOT NULL OPTIONS(description="The inactivity gap in force (--session_gap_s)."),
  version INT64 NOT NULL OPTIONS(description="Pane index + 1 of this window."),
  timing STRING NOT NULL OPTIONS(description="ON_TIME (closed: the watermark passed window_end) or LATE (a late event added within the allowed lateness)."),
  is_last BOOL NOT NULL OPTIONS(description="The window's last pane (its allowed lateness ended)."),
  emitted_at TIMESTAMP NOT NULL OPTIONS(description="When the job wrote this version (processing time).")
)
PARTITION BY DATE(session_start)
CLUSTER BY user_id
OPTIONS(description="User sessions (30-minute inactivity by default), versions of each session window; read user_sessions_current.");
