-- 7. Conflicts: every copy the producer published with an identity it had
-- already used and another content is in the conflicts table (with both
-- hashes), and the event tables' accepted copy is the first one. Conflict
-- rows that no ledger conflict explains fail too.
WITH ledger AS (
  SELECT event_type, event_id, content_hash, conflict
  FROM `${PROJECT}.${DATASET}.producer_ledger`
  WHERE (@run_id = '' OR run_id = @run_id)
    AND event_time >= @start AND event_time < @end
    AND NOT malformed
),
expected AS (
  SELECT c.event_type, c.event_id, c.content_hash AS conflicting, a.content_hash AS accepted
  FROM ledger AS c
  JOIN ledger AS a ON a.event_type = c.event_type AND a.event_id = c.event_id AND NOT a.conflict
  WHERE c.conflict
),
found AS (
  SELECT event_type, event_id, conflicting_content_hash, ANY_VALUE(accepted_content_hash) AS accepted_content_hash
  FROM `${PROJECT}.${DATASET}.conflicts`
  WHERE event_id IN (SELECT event_id FROM ledger)
  GROUP BY event_type, event_id, conflicting_content_hash
)
SELECT
  COALESCE(e.event_type, f.event_type) AS event_type,
  COUNTIF(e.event_id IS NOT NULL) AS expected,
  COUNTIF(e.event_id IS NOT NULL AND f.event_id IS NOT NULL AND f.accepted_content_hash = e.accepted) AS found,
  COUNTIF(e.event_id IS NULL OR f.event_id IS NULL OR f.accepted_content_hash != e.accepted) AS failures,
  ARRAY_AGG(IF(e.event_id IS NULL OR f.event_id IS NULL OR f.accepted_content_hash != e.accepted,
               COALESCE(e.event_id, f.event_id), NULL) IGNORE NULLS) AS sample_conflict_ids
FROM expected AS e
FULL OUTER JOIN found AS f
  ON f.event_type = e.event_type AND f.event_id = e.event_id AND f.conflicting_content_hash = e.conflicting
GROUP BY 1
ORDER BY 1;
