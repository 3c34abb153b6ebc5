-- Analysts: revenue of new orders (status pending) per day and shipping
-- country, with the running total per country, from daily_sales.
SELECT
  day,
  country,
  orders,
  revenue,
  SUM(revenue) OVER (PARTITION BY country ORDER BY day
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS revenue_to_date
FROM `${PROJECT}.${DATASET}.daily_sales`
WHERE status = 'pending'
ORDER BY day, country;
