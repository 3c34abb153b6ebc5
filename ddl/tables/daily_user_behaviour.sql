-- Generated from schemas/ by `python -m schemas.ddl --write`. Do not edit by hand.
CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.daily_user_behaviour` (
  day DATE NOT NULL OPTIONS(description="UTC day. Partitioning column."),
  platform STRING NOT NULL OPTIONS(description="metadata.platform of user_activity events."),
  active_users INT64 NOT NULL OPTIONS(description="Users with an activity on the platform that day."),
  events INT64 NOT NULL OPTIONS(description="Their user_activity events."),
  event_share FLOAT64 NOT NULL OPTIONS(description="events / all user_activity events of the day (the platform mix)."),
  sessions INT64 NOT NULL OPTIONS(description="Sessions (user_sessions_current) starting that day whose main platform it is."),
  avg_session_s FLOAT64 OPTIONS(description="Their mean duration, seconds."),
  viewers INT64 NOT NULL OPTIONS(description="Users who viewed a product on the platform that day."),
  carters INT64 NOT NULL OPTIONS(description="Of the viewers, those who added to cart that day."),
  buyers INT64 NOT NULL OPTIONS(description="Of the carters, those who placed an order that day (order_date)."),
  view_to_cart FLOAT64 OPTIONS(description="carters / viewers."),
  cart_to_order FLOAT64 OPTIONS(description="buyers / carters."),
  built_at TIMESTAMP NOT NULL OPTIONS(description="When the row last changed.")
)
PARTITION BY day
CLUSTER BY platform
OPTIONS(description="Per day (UTC) and platform: active users, sessions, events, share of the day's events, funnel view -> cart -> order. Built by python -m warehouse daily.");
