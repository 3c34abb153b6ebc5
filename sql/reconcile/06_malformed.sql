-- 6. Malformed: every malformed message the producer published is in the
-- dead-letter table with a reason, found by the sha256 of its bytes (the
-- brief's producer sets no attributes, so nothing else identifies it).
WITH bad AS (
  SELECT payload_sha256, malformed_kind
  FROM `${PROJECT}.${DATASET}.producer_ledger`
  WHERE (@run_id = '' OR run_id = @run_id)
    AND event_time >= @start AND event_time < @end
    AND malformed
),
dead AS (
  SELECT payload_sha256, ANY_VALUE(error_type) AS error_type, ANY_VALUE(error) AS error
  FROM `${PROJECT}.${DATASET}.dead_letter`
  GROUP BY payload_sha256
)
SELECT
  b.malformed_kind,
  COUNT(*) AS published,
  COUNTIF(d.payload_sha256 IS NOT NULL AND d.error != '') AS dead_lettered,
  COUNTIF(d.payload_sha256 IS NULL OR d.error = '') AS failures,
  ANY_VALUE(d.error_type) AS error_type,
  ANY_VALUE(d.error) AS sample_reason
FROM bad AS b
LEFT JOIN dead AS d USING (payload_sha256)
GROUP BY b.malformed_kind
ORDER BY b.malformed_kind;
