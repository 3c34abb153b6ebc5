-- 7. Conflicts: for every identity the producer published with more than one
-- content, the event tables hold one of those contents (whichever copy the job
-- saw first: an outage can reorder publishes), and the conflicts table holds
-- every other content, with the stored one as the accepted content. A
-- conflict recorded against the stored content itself fails too.
-- (Events as first sent: a correction is a version of its own, check 10.)
WITH ledger AS (
  SELECT DISTINCT event_type, event_id, content_hash
  FROM `${PROJECT}.${DATASET}.producer_ledger`
  WHERE (@run_id = '' OR run_id = @run_id)
    AND event_time >= @start AND event_time < @end
    AND NOT malformed AND change_type IS NULL
),
groups AS (
  SELECT event_type, event_id FROM ledger GROUP BY event_type, event_id HAVING COUNT(*) > 1
),
stored AS (
  SELECT t.event_type, t.event_id, t.content_hash AS stored_hash
  FROM `${PROJECT}.${DATASET}.all_events` AS t
  JOIN groups AS g ON g.event_type = t.event_type AND g.event_id = t.event_id
  WHERE t.change_type IS NULL
  QUALIFY ROW_NUMBER() OVER (PARTITION BY t.event_type, t.event_id ORDER BY t.ingest_time, t.publish_time) = 1
),
expected AS (
  SELECT l.event_type, l.event_id, l.content_hash AS conflicting, s.stored_hash
  FROM ledger AS l
  JOIN groups AS g ON g.event_type = l.event_type AND g.event_id = l.event_id
  LEFT JOIN stored AS s ON s.event_type = l.event_type AND s.event_id = l.event_id
  WHERE s.stored_hash IS NULL OR l.content_hash != s.stored_hash
),
found AS (
  SELECT c.event_type, c.event_id, c.conflicting_content_hash, ANY_VALUE(c.accepted_content_hash) AS accepted
  FROM `${PROJECT}.${DATASET}.conflicts` AS c
  JOIN groups AS g ON g.event_type = c.event_type AND g.event_id = c.event_id
  GROUP BY c.event_type, c.event_id, c.conflicting_content_hash
)
SELECT
  COALESCE(e.event_type, f.event_type) AS event_type,
  COUNTIF(e.event_id IS NOT NULL) AS expected,
  COUNTIF(e.event_id IS NOT NULL AND f.event_id IS NOT NULL AND f.accepted = e.stored_hash) AS found,
  COUNTIF(e.event_id IS NULL OR f.event_id IS NULL OR e.stored_hash IS NULL OR f.accepted != e.stored_hash)
    AS failures,
  ARRAY_AGG(IF(e.event_id IS NULL OR f.event_id IS NULL OR e.stored_hash IS NULL OR f.accepted != e.stored_hash,
               COALESCE(e.event_id, f.event_id), NULL) IGNORE NULLS) AS sample_conflict_ids
FROM expected AS e
FULL OUTER JOIN found AS f
  ON f.event_type = e.event_type AND f.event_id = e.event_id AND f.conflicting_content_hash = e.conflicting
GROUP BY 1
ORDER BY 1;
