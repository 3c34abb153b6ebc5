-- User behaviour of one UTC day (query parameter day) per platform (metadata.platform of
-- user_activity events, user_activity_events_dedup): active users, events
-- and their share of the day (the platform mix), sessions starting that day
-- whose main platform it is (user_sessions_current), and the funnel: users
-- who viewed a product, those of them who added to cart, those of them who
-- placed an order that day (fact_orders_current by order_date; a customer
-- is a user, one id space).
MERGE `${PROJECT}.${DATASET}.daily_user_behaviour` AS t
USING (
  WITH activity AS (
    SELECT a.user_id, a.activity_type, a.metadata.platform AS platform
    FROM `${PROJECT}.${DATASET}.user_activity_events_dedup` AS a
    WHERE a.event_time >= TIMESTAMP(@day) AND a.event_time < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY))
  ),
  per_user AS (
    SELECT platform, user_id, COUNT(*) AS events,
      LOGICAL_OR(activity_type = 'view_product') AS viewed,
      LOGICAL_OR(activity_type = 'add_to_cart') AS carted
    FROM activity GROUP BY platform, user_id
  ),
  buyers AS (
    SELECT DISTINCT o.customer_id AS user_id FROM `${PROJECT}.${DATASET}.fact_orders_current` AS o
    WHERE o.order_date >= TIMESTAMP(@day) AND o.order_date < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY))
  ),
  funnel AS (
    SELECT u.platform, COUNT(*) AS active_users, SUM(u.events) AS events,
      SUM(IF(u.viewed, 1, 0)) AS viewers,
      SUM(IF(u.viewed AND u.carted, 1, 0)) AS carters,
      SUM(IF(u.viewed AND u.carted AND b.user_id IS NOT NULL, 1, 0)) AS buyers
    FROM per_user AS u LEFT JOIN buyers AS b ON b.user_id = u.user_id
    GROUP BY u.platform
  ),
  sessions AS (
    SELECT platform, COUNT(*) AS sessions, AVG(duration_s) AS avg_session_s
    FROM `${PROJECT}.${DATASET}.user_sessions_current`
    WHERE session_start >= TIMESTAMP(@day) AND session_start < TIMESTAMP(DATE_ADD(@day, INTERVAL 1 DAY))
      AND platform IS NOT NULL
    GROUP BY platform
  )
  SELECT @day AS day, f.platform, f.active_users, f.events,
    f.events / SUM(f.events) OVER () AS event_share,
    IFNULL(s.sessions, 0) AS sessions, s.avg_session_s,
    f.viewers, f.carters, f.buyers,
    SAFE_DIVIDE(f.carters, f.viewers) AS view_to_cart,
    SAFE_DIVIDE(f.buyers, f.carters) AS cart_to_order
  FROM funnel AS f LEFT JOIN sessions AS s ON s.platform = f.platform
) AS s
ON t.day = s.day AND t.platform = s.platform
WHEN MATCHED AND (t.active_users != s.active_users OR t.events != s.events OR t.sessions != s.sessions
                  OR t.viewers != s.viewers OR t.carters != s.carters OR t.buyers != s.buyers
                  OR ABS(t.event_share - s.event_share) > 1e-12
                  OR IFNULL(ABS(t.avg_session_s - s.avg_session_s) > 1e-9,
                            (t.avg_session_s IS NULL) != (s.avg_session_s IS NULL))) THEN
  UPDATE SET active_users = s.active_users, events = s.events, event_share = s.event_share, sessions = s.sessions,
    avg_session_s = s.avg_session_s, viewers = s.viewers, carters = s.carters, buyers = s.buyers,
    view_to_cart = s.view_to_cart, cart_to_order = s.cart_to_order, built_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED BY TARGET THEN
  INSERT (day, platform, active_users, events, event_share, sessions, avg_session_s, viewers, carters, buyers,
          view_to_cart, cart_to_order, built_at)
  VALUES (s.day, s.platform, s.active_users, s.events, s.event_share, s.sessions, s.avg_session_s, s.viewers,
          s.carters, s.buyers, s.view_to_cart, s.cart_to_order, CURRENT_TIMESTAMP())
WHEN NOT MATCHED BY SOURCE AND t.day = @day THEN
  DELETE
