-- One row per session as it stands. The table holds versions
-- (pipeline/sessions.py): every pane of a session window is the whole session
-- so far, and a late event that bridges two sessions makes one merged window
-- that covers both. A row is current when no other row of the same user
-- covers its window with more: a wider window, or the same window with a
-- later version. A second copy of one row (a retried insert the insertId did
-- not catch) is kept once.
CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.user_sessions_current` AS
WITH distinct_rows AS (
  SELECT *
  FROM `${PROJECT}.${DATASET}.user_sessions`
  WHERE TRUE
  QUALIFY ROW_NUMBER() OVER (PARTITION BY row_id ORDER BY emitted_at) = 1
),
covered AS (
  SELECT DISTINCT s.row_id
  FROM distinct_rows AS s
  JOIN distinct_rows AS o
    ON o.user_id = s.user_id
   AND o.window_start <= s.window_start AND o.window_end >= s.window_end
   AND (o.window_start < s.window_start OR o.window_end > s.window_end OR o.version > s.version)
)
SELECT * EXCEPT (row_id), row_id
FROM distinct_rows
WHERE row_id NOT IN (SELECT row_id FROM covered)
