"""The reconciliation against the producer's ledger: SQL in sql/reconcile/
against BigQuery, and the same questions against the files.

Each check gives rows with a `failures` column; a check passes when every row
has 0 failures. Every check has a test that makes it fail
(tests/test_reconcile.py and tests/test_end_to_end.py). For production, where
there is no ledger, see `reconcile.no_ledger`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pipeline.policy import LatenessPolicy
from provision import substitute
from reconcile.files import FileInventory, scan
from schemas import event_specs
from schemas.contract import ALERT_THRESHOLD, minute_of, parse_timestamp, stored_content_hash, version_id

SQL_DIR = Path(__file__).resolve().parent.parent / "sql" / "reconcile"
FAR_PAST = datetime(1970, 1, 1, tzinfo=timezone.utc)
FAR_FUTURE = datetime(2200, 1, 1, tzinfo=timezone.utc)
QUERY_TIMEOUT_S = 120


@dataclass
class Scope:
    run_id: str = ""
    start: datetime = FAR_PAST
    end: datetime = FAR_FUTURE
    alert_threshold: int = ALERT_THRESHOLD  # what the job ran with (--alert_threshold)
    allowed_lateness_s: int = LatenessPolicy.allowed_lateness_s  # what the job ran with (--allowed_lateness_s)
    # False for a backfill's ledger: the stream's analytics (checks 8 and 9) are
    # the live job's, and a backfill writes none.
    streaming: bool = True


@dataclass
class CheckResult:
    name: str
    title: str
    rows: list[dict]
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return sum(int(r.get("failures") or 0) for r in self.rows)

    @property
    def passed(self) -> bool:
        return self.failures == 0


def _jsonable(value):
    if isinstance(value, datetime):
        # Whole seconds read better in a report; anything finer is kept, since
        # a change's changed_at is part of its version's identity.
        value = value.astimezone(timezone.utc)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "is_finite"):  # Decimal
        return float(value)
    return value


def query_config(params: dict):
    """Query parameters from a dict of name -> value (type from the value)."""
    from google.cloud import bigquery

    out = []
    for name, value in params.items():
        if isinstance(value, int) and not isinstance(value, bool):
            out.append(bigquery.ScalarQueryParameter(name, "INT64", value))
        elif isinstance(value, list):
            out.append(bigquery.ArrayQueryParameter(name, "STRING", value))
        elif isinstance(value, datetime):
            out.append(bigquery.ScalarQueryParameter(name, "TIMESTAMP", value))
        else:
            out.append(bigquery.ScalarQueryParameter(name, "STRING", value))
    return bigquery.QueryJobConfig(query_parameters=out)


def query(client, sql: str, params: dict | None = None) -> list[dict]:
    """Rows as dicts. Fails fast: no silent minutes of client retries when
    BigQuery is unreachable (the caller says so in one line)."""
    from google.api_core.retry import Retry

    job = client.query(sql, job_config=query_config(params or {}), retry=Retry(timeout=10), job_retry=None,
                       timeout=30)
    return [dict(row.items()) for row in job.result(timeout=QUERY_TIMEOUT_S, retry=Retry(timeout=10))]


def run_sql(client, name: str, project: str, dataset: str, scope: Scope) -> list[dict]:
    sql = substitute((SQL_DIR / name).read_text(), project, dataset)
    params = {"run_id": scope.run_id, "start": scope.start, "end": scope.end}
    if "@threshold" in sql:
        params["threshold"] = scope.alert_threshold
    if "@allowed_lateness_s" in sql:
        params["allowed_lateness_s"] = scope.allowed_lateness_s
    rows = query(client, sql, params)
    # sample_* columns hold every offending id (LIMIT inside ARRAY_AGG is not
    # portable to the emulator); five are enough for a report.
    return [{k: (_jsonable(v)[:5] if k.startswith("sample_") and isinstance(v, list) else _jsonable(v))
             for k, v in row.items()} for row in rows]


# -- the files side --------------------------------------------------------------------------
def _good(ledger: list[dict]) -> list[dict]:
    """One ledger row per version the event tables and files must hold (the
    event as first sent, and each change of it): the first published of its
    contents."""
    return [r for r in ledger if not r["malformed"] and not r["conflict"]]


def _version(r: dict) -> str:
    return version_id(r["event_id"], r.get("change_type"), r.get("changed_at"))


def _contents(ledger: list[dict]) -> dict:
    """(type, version) -> every content the producer published under it. The
    stored copy may be any of them (the one the job saw first); check 7
    proves the others are in `conflicts`."""
    out = defaultdict(set)
    for r in ledger:
        if not r["malformed"]:
            out[(r["event_type"], _version(r))].add(r["content_hash"])
    return out


def _samples(ids, n: int = 5) -> list[str]:
    return sorted(ids)[:n]


def files_checks(ledger: list[dict], inv: FileInventory, per_minute_rows: list[dict],
                 stored: dict | None = None) -> list[CheckResult]:
    """The ledger's events in the files: each once, in the folder of its
    event-time minute, with a content the producer published and, when
    `stored` ((type, id) -> content hash recomputed from BigQuery) is given,
    the same copy BigQuery holds; the layout and manifests intact;
    per-minute counts equal to the producer's and BigQuery's."""
    stored = stored or {}
    good = _good(ledger)
    contents = _contents(ledger)
    by_type = defaultdict(lambda: {"expected": 0, "missing": [], "duplicated": [], "misplaced": [], "changed": []})
    for r in good:
        key = (r["event_type"], _version(r))
        entry = by_type[r["event_type"]]
        entry["expected"] += 1
        places = inv.locations.get(key, [])
        minute = minute_of(parse_timestamp(r["event_time"]))
        if not places:
            entry["missing"].append(r["event_id"])
            continue
        if len(places) > 1:
            entry["duplicated"].append(r["event_id"])
        if any(p.minute != minute or p.event_type != r["event_type"] for p in places):
            entry["misplaced"].append(r["event_id"])
        if any(p.content_hash not in contents[key] or p.content_hash != stored.get(key, p.content_hash)
               for p in places):
            entry["changed"].append(r["event_id"])

    def rows(kind):
        return [{"event_type": t, "expected": v["expected"], "failures": len(v[kind]),
                 f"sample_{kind}_ids": _samples(v[kind])} for t, v in sorted(by_type.items())]

    in_folder = defaultdict(set)  # (folder minute, type) -> the ledger's events (as first sent) found there
    for r in good:
        if r.get("change_type"):
            continue
        for place in inv.locations.get((r["event_type"], r["event_id"]), []):
            in_folder[(place.minute, place.event_type)].add(r["event_id"])
    minute_rows = []
    for row in per_minute_rows:
        minute = parse_timestamp(row["minute"])
        gcs = len(in_folder.get((minute, row["event_type"]), ()))
        minute_rows.append({**row, "gcs_count": gcs,
                            "failures": int(bool(row["failures"]) or row["producer_count"] != gcs)})
    late = [r for r in good if r["intended_delay_s"] > 0 and not r.get("change_type")]
    late_bad = [r["event_id"] for r in late
                if not inv.locations.get((r["event_type"], r["event_id"]))
                or any(p.minute != minute_of(parse_timestamp(r["event_time"]))
                       for p in inv.locations[(r["event_type"], r["event_id"])])]
    layout = [{"files": inv.files, "lines": inv.lines, "outside_layout": len(inv.bad_paths),
               "manifest_problems": len(inv.manifest_problems),
               "failures": len(inv.bad_paths) + len(inv.manifest_problems)}]
    return [
        CheckResult("gcs_missing", "GCS: ledger events absent from the files", rows("missing")),
        CheckResult("gcs_duplicates", "GCS: events in more than one file line", rows("duplicated")),
        CheckResult("gcs_misplaced", "GCS: events outside the folder of their event-time minute", rows("misplaced")),
        CheckResult("gcs_content", "GCS: file lines whose values differ from what was published or from BigQuery",
                    rows("changed")),
        CheckResult("gcs_late", "GCS: late events in the folder of their event time",
                    [{"late_events": len(late), "failures": len(late_bad), "sample_misplaced_ids": late_bad[:5]}]),
        CheckResult("gcs_layout", "GCS: every file in the brief's layout, every folder's manifest exact", layout,
                    [f"outside the layout: {p}" for p in inv.bad_paths[:5]] + inv.manifest_problems[:5]),
        CheckResult("per_minute", "4. Per minute and type: producer = BigQuery = GCS", minute_rows),
    ]


def content_check(client, project: str, dataset: str, ledger: list[dict]) -> tuple[CheckResult, dict]:
    """Content fidelity: the content hash recomputed from every stored column
    of each event's row in the dedup views (schemas.contract) equals the hash
    of what the producer published. A value changed on the way (rounding, a
    time zone, a truncated string) fails here even if the ids all match.
    Also returns (type, id) -> the recomputed hash, for the files check."""
    expected = _contents(ledger)
    rows, stored = [], {}
    for event_type, spec in event_specs().items():
        ids = sorted({r["event_id"] for r in ledger if r["event_type"] == event_type and not r["malformed"]})
        if not ids:
            continue
        changed, checked = [], 0
        # every version the table holds, its first copy ingested (the *_dedup views show the latest: check 10)
        for row in query(client, f"SELECT * FROM `{project}.{dataset}.{spec.name}` WHERE event_id IN UNNEST(@ids) "
                                 "QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id, change_type, changed_at "
                                 "ORDER BY ingest_time, publish_time) = 1", {"ids": ids}):
            key = (event_type, version_id(row["event_id"], row["change_type"], row["changed_at"]))
            if key not in expected:
                continue  # another run's change of this event
            checked += 1
            digest = stored[key] = stored_content_hash(event_type, row)
            if digest not in expected[key]:
                changed.append(key[1])
        rows.append({"event_type": event_type, "checked": checked, "failures": len(changed),
                     "sample_changed_ids": changed[:5]})
    return CheckResult("content", "8. Content: every stored value as the producer published it", rows), stored


def ledger_rows(client, project: str, dataset: str, scope: Scope) -> list[dict]:
    sql = (f"SELECT event_id, event_type, event_time, content_hash, intended_delay_s, malformed, far_late, conflict, "
           f"copies, change_type, changed_at, entity FROM `{project}.{dataset}.producer_ledger` "
           f"WHERE (@run_id = '' OR run_id = @run_id) "
           f"AND event_time >= @start AND event_time < @end")
    rows = query(client, sql, {"run_id": scope.run_id, "start": scope.start, "end": scope.end})
    return [{k: _jsonable(v) for k, v in row.items()} for row in rows]


def run_all(client, project: str, dataset: str, output_prefix: str | None, scope: Scope,
            project_files: str | None = None) -> dict:
    """Every check, plus the data the report's picture needs."""
    ledger = ledger_rows(client, project, dataset, scope)
    results = [
        # An empty scope proves nothing: a wrong run id or an unloaded ledger fails.
        CheckResult("scope", "0. The ledger has events in scope",
                    [{"ledger_events": len(ledger), "failures": int(len(ledger) == 0)}]),
        CheckResult("missing", "1. Missing: ledger events absent from BigQuery",
                    run_sql(client, "01_missing.sql", project, dataset, scope)),
        CheckResult("unexpected", "2. Unexpected: BigQuery events not in the ledger",
                    run_sql(client, "02_unexpected.sql", project, dataset, scope)),
        CheckResult("duplicates", "3. Duplicates: once in the dedup views, never more raw rows than copies published",
                    run_sql(client, "03_duplicates.sql", project, dataset, scope)),
    ]
    per_minute = run_sql(client, "04_per_minute.sql", project, dataset, scope)
    content, stored = content_check(client, project, dataset, ledger)
    if output_prefix:
        results.extend(files_checks(ledger, scan(output_prefix, project_files or project), per_minute, stored))
    else:
        results.append(CheckResult("per_minute", "4. Per minute and type: producer = BigQuery", per_minute))
    results.extend([
        CheckResult("late", "5. Late events in the partition and minute of their event time",
                    run_sql(client, "05_late_events.sql", project, dataset, scope)),
        CheckResult("malformed", "6. Malformed messages in the dead-letter table with a reason",
                    run_sql(client, "06_malformed.sql", project, dataset, scope)),
        CheckResult("conflicts", "7. Conflicting copies in the conflicts table, the stored copy one of them",
                    run_sql(client, "07_conflicts.sql", project, dataset, scope)),
        CheckResult("changes", "10. Changes: every correction, invalidation and deletion stored, and the *_dedup views "
                               "show each event's latest version, hide invalidated events and deleted entities",
                    run_sql(client, "10_changes.sql", project, dataset, scope)),
        content,
    ])
    if scope.streaming:
        results[-1:-1] = [
            CheckResult("alerts", f"8. Anomaly alerts: one per (user, minute) with more than {scope.alert_threshold} "
                                  "events, no other", run_sql(client, "08_alerts.sql", project, dataset, scope)),
            metrics_check(run_sql(client, "09_metrics.sql", project, dataset, scope)),
        ]
    good = _good(ledger)
    return {"results": results, "lag": run_sql(client, "lag.sql", project, dataset, scope),
            "ledger_events": len(ledger),
            "ledger_malformed": sum(1 for r in ledger if r["malformed"]),
            "ledger_duplicated": sum(1 for r in ledger if r["copies"] > 1),
            "ledger_conflicts": sum(1 for r in ledger if r["conflict"]),
            "ledger_late": sum(1 for r in good if r["intended_delay_s"] > 0 and not r["far_late"]
                               and not r["change_type"]),
            "ledger_far_late": sum(1 for r in good if r["far_late"] and not r["change_type"]),
            "ledger_changes": sum(1 for r in good if r["change_type"])}


def metrics_check(rows: list[dict]) -> CheckResult:
    """Check 9, with a note naming the (minute, type) cells whose counts a
    stopped job lost (held to nothing but existing)."""
    lost = [f"{r['minute']} {r['event_type']}" for r in rows if r.get("metrics_complete") is False]
    notes = [f"{len(lost)} (minute, type) with metrics incomplete (a job stopped while the minute was open; "
             f"not compared): {', '.join(lost[:6])}{' ...' if len(lost) > 6 else ''}"] if lost else []
    return CheckResult("metrics", "9. Per-minute metrics: events and users as stored, late counts, duplicates, "
                                  "conflicts and dead letters as the producer sent them", rows, notes)


def wait_until_passed(client, project: str, dataset: str, output_prefix: str | None, scope: Scope,
                      timeout_s: float, keep_waiting=lambda: True, on_wait=None, every_s: float = 5.0,
                      ignore: tuple = ()) -> dict:
    """Re-run every check until all pass (but those named in `ignore`, which
    do not hold for this run: the caller says why), the timeout passes or
    `keep_waiting()` says stop (the job died); the last outcome is returned.
    Minute folders complete a while after the last event, so a run converges."""
    deadline = time.monotonic() + timeout_s
    while True:
        outcome = run_all(client, project, dataset, output_prefix, scope)
        failing = [r.name for r in outcome["results"] if not r.passed and r.name not in ignore]
        if not failing or time.monotonic() >= deadline or not keep_waiting():
            return outcome
        if on_wait:
            on_wait(failing)
        time.sleep(every_s)
