-- 6. Malformed: every malformed message the producer published is in the
-- dead-letter table (matched by its event_id attribute) with a reason.
WITH bad AS (
  SELECT event_id, malformed_kind
  FROM `${PROJECT}.${DATASET}.producer_ledger`
  WHERE (@run_id = '' OR run_id = @run_id)
    AND event_time >= @start AND event_time < @end
    AND malformed
),
dead AS (
  SELECT event_id, ANY_VALUE(error_type) AS error_type, ANY_VALUE(error) AS error
  FROM `${PROJECT}.${DATASET}.dead_letter`
  WHERE event_id IS NOT NULL
  GROUP BY event_id
)
SELECT
  b.malformed_kind,
  COUNT(*) AS published,
  COUNTIF(d.event_id IS NOT NULL AND d.error != '') AS dead_lettered,
  COUNTIF(d.event_id IS NULL OR d.error = '') AS failures,
  ANY_VALUE(d.error_type) AS error_type,
  ANY_VALUE(d.error) AS sample_reason
FROM bad AS b
LEFT JOIN dead AS d USING (event_id)
GROUP BY b.malformed_kind
ORDER BY b.malformed_kind;
