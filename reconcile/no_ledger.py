"""The reconciliation without a producer ledger: the daily production check.

For an event-time range, per minute and event type, three independent
counts must agree:

* BigQuery: distinct versions in the event tables (an event as first sent,
  and each correction, invalidation or deletion of it: the files hold each
  version once, and the `*_dedup` views apply them);
* the job's own record: lines of the files it says it wrote (`files_written`);
* the files themselves: the line counts in each minute folder's manifest,
  whose file list must equal the folder's listing.

That costs a few queries and one small read per minute folder, so it scales
to a day of production data. `deep=True` also reads every line: the same
events on both sides (by identity, per minute), each once, with the same
content (the content hash recomputed from the BigQuery row and from the file
line). And a raw table never holds an identity with a second content that
the conflicts table does not record.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from reconcile.checks import CheckResult, _jsonable, query
from reconcile.files import scan
from schemas import event_specs
from schemas.contract import minute_of, stored_content_hash, version_id

# One version of an event in SQL (for counting: unique per version, not the
# text of schemas.contract.version_id).
VERSION_SQL = "CONCAT(event_id, '@', IFNULL(change_type, ''), '@', IFNULL(CAST(changed_at AS STRING), ''))"


def _bigquery_minutes(client, project: str, dataset: str, start: datetime, end: datetime) -> dict:
    counts = {}
    for event_type, spec in event_specs().items():
        for row in query(client, f"SELECT TIMESTAMP_TRUNC(event_time, MINUTE) AS minute, "
                                 f"COUNT(DISTINCT {VERSION_SQL}) AS n "
                                 f"FROM `{project}.{dataset}.{spec.name}` "
                                 "WHERE event_time >= @start AND event_time < @end GROUP BY minute",
                         {"start": start, "end": end}):
            counts[(minute_of(row["minute"]), event_type)] = row["n"]
    return counts


def _job_minutes(client, project: str, dataset: str, start: datetime, end: datetime) -> dict:
    rows = query(client, f"SELECT minute, event_type, SUM(lines) AS n FROM ("
                         f"  SELECT path, ANY_VALUE(minute) AS minute, ANY_VALUE(event_type) AS event_type, "
                         f"         ANY_VALUE(lines) AS lines"
                         f"  FROM `{project}.{dataset}.files_written`"
                         "   WHERE minute >= TIMESTAMP_TRUNC(@start, MINUTE) AND minute < @end GROUP BY path) "
                         "GROUP BY minute, event_type", {"start": start, "end": end})
    return {(minute_of(r["minute"]), r["event_type"]): r["n"] for r in rows}


def _unrecorded_conflicts(client, project: str, dataset: str, start: datetime, end: datetime) -> list[dict]:
    """Identities a raw table holds with more than one content, where a later
    content is not in the conflicts table: a conflict accepted silently."""
    out = []
    for event_type, spec in event_specs().items():
        rows = query(client, f"""
            WITH contents AS (
              SELECT event_id, {VERSION_SQL} AS version, content_hash, MIN(ingest_time) AS first_seen
              FROM `{project}.{dataset}.{spec.name}`
              WHERE event_time >= @start AND event_time < @end
              GROUP BY event_id, version, content_hash
            ), ranked AS (
              SELECT event_id, content_hash,
                     ROW_NUMBER() OVER (PARTITION BY version ORDER BY first_seen, content_hash) AS rank
              FROM contents
            )
            SELECT r.event_id FROM ranked AS r
            LEFT JOIN (SELECT DISTINCT event_id, conflicting_content_hash FROM `{project}.{dataset}.conflicts`
                       WHERE event_type = @event_type) AS c
              ON c.event_id = r.event_id AND c.conflicting_content_hash = r.content_hash
            WHERE r.rank > 1 AND c.event_id IS NULL""", {"start": start, "end": end, "event_type": event_type})
        out.append({"event_type": event_type, "failures": len(rows), "sample_ids": [r["event_id"] for r in rows[:5]]})
    return out


def _deep(client, project: str, dataset: str, start: datetime, end: datetime, inv) -> list[CheckResult]:
    """Every version of every event of the range on both sides, once, with
    the same content (the first copy BigQuery ingested of each)."""
    missing_files, missing_bq, changed, duplicated = defaultdict(list), defaultdict(list), defaultdict(list), \
        defaultdict(list)
    checked = defaultdict(int)
    stored = {}
    for event_type, spec in event_specs().items():
        for row in query(client, f"SELECT * FROM `{project}.{dataset}.{spec.name}` "
                                 "WHERE event_time >= @start AND event_time < @end "
                                 "QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id, change_type, changed_at "
                                 "ORDER BY ingest_time, publish_time) = 1", {"start": start, "end": end}):
            key = (event_type, version_id(row["event_id"], row["change_type"], row["changed_at"]))
            stored[key] = (minute_of(row["event_time"]), stored_content_hash(event_type, row))
    for key, (minute, digest) in stored.items():
        places = inv.locations.get(key, [])
        checked[key[0]] += 1
        if not places:
            missing_files[key[0]].append(key[1])
            continue
        if len(places) > 1:
            duplicated[key[0]].append(key[1])
        if any(p.minute != minute or p.content_hash != digest for p in places):
            changed[key[0]].append(key[1])
    for key, places in inv.locations.items():
        if key not in stored and any(start <= p.minute < end for p in places):
            missing_bq[key[0]].append(key[1])

    def rows(found):
        return [{"event_type": t, "checked": checked[t], "failures": len(found[t]), "sample_ids": sorted(found[t])[:5]}
                for t in event_specs()]

    return [
        CheckResult("nl_missing_in_files", "Events in BigQuery absent from the files", rows(missing_files)),
        CheckResult("nl_missing_in_bigquery", "Events in the files absent from BigQuery", rows(missing_bq)),
        CheckResult("nl_duplicates_in_files", "Events in more than one file line", rows(duplicated)),
        CheckResult("nl_content", "Same event, different minute or values in BigQuery and the files", rows(changed)),
    ]


def run_no_ledger(client, project: str, dataset: str, output_prefix: str, start: datetime, end: datetime,
                  deep: bool = False, files_project: str | None = None) -> dict:
    inv = scan(output_prefix, files_project or project, start, end, read_data=deep)
    bq = _bigquery_minutes(client, project, dataset, start, end)
    job = _job_minutes(client, project, dataset, start, end)
    files = dict(inv.manifest_lines)
    if deep:  # the lines themselves, not the manifests' word for them
        files = {k: len(v) for k, v in inv.per_minute.items()}
    minute_rows = []
    for key in sorted(set(bq) | set(job) | set(files)):
        minute, event_type = key
        if not start <= minute < end:
            continue
        b, j, f = bq.get(key, 0), job.get(key, 0), files.get(key, 0)
        minute_rows.append({"minute": _jsonable(minute), "event_type": event_type, "bigquery_count": b,
                            "job_count": j, "files_count": f, "failures": int(not b == j == f)})
    layout = [{"files": inv.files, "outside_layout": len(inv.bad_paths), "manifest_problems": len(inv.manifest_problems),
               "failures": len(inv.bad_paths) + len(inv.manifest_problems)}]
    results = [
        CheckResult("nl_scope", "The range holds events", [{"minutes": len(minute_rows),
                                                            "failures": int(not minute_rows)}]),
        CheckResult("nl_per_minute", "Per minute and type: BigQuery = the job's files_written = the files",
                    minute_rows),
        CheckResult("nl_layout", "Every file in the brief's layout, every folder's manifest exact", layout,
                    [f"outside the layout: {p}" for p in inv.bad_paths[:5]] + inv.manifest_problems[:5]),
        CheckResult("nl_conflicts", "No identity stored with two contents unless the conflicts table has it",
                    _unrecorded_conflicts(client, project, dataset, start, end)),
    ]
    if deep:
        results.extend(_deep(client, project, dataset, start, end, inv))
    return {"results": results, "mode": "deep" if deep else "counts"}
