-- Analysts: the view -> cart -> order funnel per platform over every day
-- built, from daily_user_behaviour (users are counted per day).
SELECT
  platform,
  SUM(viewers) AS viewers,
  SUM(carters) AS carters,
  SUM(buyers) AS buyers,
  SAFE_DIVIDE(SUM(carters), SUM(viewers)) AS view_to_cart,
  SAFE_DIVIDE(SUM(buyers), SUM(carters)) AS cart_to_order,
  SUM(sessions) AS sessions
FROM `${PROJECT}.${DATASET}.daily_user_behaviour`
GROUP BY platform
ORDER BY platform;
