-- 10. Changes (seed 002): every correction, invalidation and deletion the
-- producer sent is stored as a version of its event (a row with its
-- change_type and changed_at), and the *_dedup views apply them: an event
-- shows its latest version (a correction's content), an event whose latest
-- version is an invalidation is hidden, and every event of an entity that a
-- deletion removed (an order: all its statuses) is hidden. Changes and
-- deletions from other runs of the ledger count too (they touch the same
-- events). The files hold each version once in the folder of its event time
-- (the GCS checks).
WITH ledger AS (
  SELECT *
  FROM `${PROJECT}.${DATASET}.producer_ledger`
  WHERE (@run_id = '' OR run_id = @run_id)
    AND event_time >= @start AND event_time < @end
    AND NOT malformed AND NOT conflict
),
every_change AS (
  SELECT *
  FROM `${PROJECT}.${DATASET}.producer_ledger`
  WHERE change_type IS NOT NULL AND NOT malformed AND NOT conflict
),
changes AS (
  SELECT * FROM ledger WHERE change_type IS NOT NULL
),
stored_changes AS (
  SELECT DISTINCT event_type, event_id, change_type, changed_at
  FROM `${PROJECT}.${DATASET}.all_events`
  WHERE change_type IS NOT NULL
),
deleted AS (
  SELECT DISTINCT event_type, entity FROM every_change WHERE change_type = 'deletion'
),
latest AS (
  SELECT event_type, event_id, change_type, content_hash
  FROM every_change
  WHERE TRUE
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_type, event_id ORDER BY changed_at DESC) = 1
),
touched AS (
  -- the run's changed events, and the run's events of deleted entities
  SELECT DISTINCT event_type, event_id, entity FROM changes
  UNION DISTINCT
  SELECT DISTINCT l.event_type, l.event_id, l.entity
  FROM ledger AS l
  JOIN deleted AS d ON d.event_type = l.event_type AND d.entity = l.entity
),
expected AS (
  SELECT t.event_type, t.event_id,
         (d.entity IS NOT NULL OR IFNULL(la.change_type, '') IN ('invalidation', 'deletion')) AS hidden,
         IF(la.change_type = 'correction', la.content_hash, NULL) AS latest_hash
  FROM touched AS t
  LEFT JOIN deleted AS d ON d.event_type = t.event_type AND d.entity = t.entity
  LEFT JOIN latest AS la ON la.event_type = t.event_type AND la.event_id = t.event_id
),
shown AS (
  SELECT event_type, event_id, content_hash
  FROM `${PROJECT}.${DATASET}.all_events_dedup`
  WHERE event_id IN (SELECT event_id FROM touched)
),
judged AS (
  SELECT e.event_type, e.event_id, e.hidden,
         IF(e.hidden, s.event_id IS NOT NULL,
            s.event_id IS NULL OR (e.latest_hash IS NOT NULL AND s.content_hash != e.latest_hash)) AS wrong
  FROM expected AS e
  LEFT JOIN shown AS s ON s.event_type = e.event_type AND s.event_id = e.event_id
),
stored AS (
  SELECT c.event_type, c.event_id, s.event_id IS NOT NULL AS found
  FROM changes AS c
  LEFT JOIN stored_changes AS s
    ON s.event_type = c.event_type AND s.event_id = c.event_id AND s.change_type = c.change_type
   AND s.changed_at = c.changed_at
),
per_type_stored AS (
  SELECT event_type, COUNT(*) AS changes, COUNTIF(NOT found) AS not_stored,
         ARRAY_AGG(IF(found, NULL, event_id) IGNORE NULLS) AS sample_not_stored_ids
  FROM stored
  GROUP BY event_type
),
per_type_judged AS (
  SELECT event_type, COUNTIF(hidden) AS to_hide, COUNTIF(wrong) AS shown_wrong,
         ARRAY_AGG(IF(wrong, event_id, NULL) IGNORE NULLS) AS sample_shown_wrong_ids
  FROM judged
  GROUP BY event_type
)
SELECT
  COALESCE(s.event_type, j.event_type) AS event_type,
  IFNULL(s.changes, 0) AS changes,
  IFNULL(s.not_stored, 0) AS not_stored,
  IFNULL(j.to_hide, 0) AS to_hide,
  IFNULL(j.shown_wrong, 0) AS shown_wrong,
  IFNULL(s.not_stored, 0) + IFNULL(j.shown_wrong, 0) AS failures,
  s.sample_not_stored_ids,
  j.sample_shown_wrong_ids
FROM per_type_stored AS s
FULL OUTER JOIN per_type_judged AS j ON j.event_type = s.event_type
ORDER BY event_type;
