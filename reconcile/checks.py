"""Run the reconciliation checks: SQL in sql/reconcile/ against BigQuery, and
the same questions against the window files on GCS (or a local folder).

Each check gives rows with a `failures` column; a check passes when every row
has 0 failures. The GCS side is computed here because BigQuery cannot list
objects: every file under the output prefix is parsed from its path
(type, minute folder, late or not) and read for its event ids.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import orjson

from pipeline.files import list_files, read_file
from pipeline.provision import substitute
from schemas import event_specs
from schemas.contract import stored_content_hash

SQL_DIR = Path(__file__).resolve().parent.parent / "sql" / "reconcile"
_PATH_RE = re.compile(
    r"/(?P<late>_too_late/)?(?P<type>order|inventory|user_activity)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    r"(?P<H>\d{2})/(?P<M>\d{2})/(?P=type)_(?P<stamp>\d{12})(?P<suffix>\d{4,}|_[0-9a-f]{16})\.json$")
FAR_PAST = datetime(1970, 1, 1, tzinfo=timezone.utc)
FAR_FUTURE = datetime(2200, 1, 1, tzinfo=timezone.utc)


@dataclass
class Scope:
    run_id: str = ""
    start: datetime = FAR_PAST
    end: datetime = FAR_FUTURE


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
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "is_finite"):  # Decimal
        return float(value)
    return value


def _scope_config(scope: Scope):
    """@run_id, @start and @end, the parameters every check takes."""
    from google.cloud import bigquery

    return bigquery.QueryJobConfig(query_parameters=[
        bigquery.ScalarQueryParameter("run_id", "STRING", scope.run_id),
        bigquery.ScalarQueryParameter("start", "TIMESTAMP", scope.start),
        bigquery.ScalarQueryParameter("end", "TIMESTAMP", scope.end),
    ])


def run_sql(client, name: str, project: str, dataset: str, scope: Scope) -> list[dict]:
    sql = substitute((SQL_DIR / name).read_text(), project, dataset)
    rows = client.query(sql, job_config=_scope_config(scope)).result(timeout=300)
    # sample_* columns hold every offending id (LIMIT inside ARRAY_AGG is not
    # portable to the emulator); five are enough for a report.
    return [{k: (_jsonable(v)[:5] if k.startswith("sample_") and isinstance(v, list) else _jsonable(v))
             for k, v in row.items()} for row in rows]


# -- the files side ---------------------------------------------------------------------
@dataclass
class FileInventory:
    """Where each event id was found in the window files."""

    per_minute: Counter = field(default_factory=Counter)          # (minute, type) -> distinct ids in that folder
    locations: dict = field(default_factory=lambda: defaultdict(list))  # event_id -> [(type, minute, too_late)]
    files: int = 0
    bad_paths: list = field(default_factory=list)


def scan_files(prefix: str, project: str | None, wanted_ids: set[str] | None = None) -> FileInventory:
    inv = FileInventory()
    for path in list_files(prefix, project):
        match = _PATH_RE.search(path)
        if not match:
            if "/.tmp-" not in path:
                inv.bad_paths.append(path)
            continue
        g = match.groupdict()
        minute = f"{g['y']}-{g['m']}-{g['d']}T{g['H']}:{g['M']}:00Z"
        if g["stamp"] != f"{g['y']}{g['m']}{g['d']}{g['H']}{g['M']}":
            inv.bad_paths.append(path)  # the name must repeat its folder's minute
            continue
        inv.files += 1
        for line in read_file(path, project).splitlines():
            if not line.strip():
                continue
            row = orjson.loads(line)
            event_id = row["event_id"]
            if wanted_ids is not None and event_id not in wanted_ids:
                continue
            if not any(loc[:2] == (g["type"], minute) for loc in inv.locations.get(event_id, [])):
                inv.per_minute[(minute, g["type"])] += 1  # distinct events per minute folder
            inv.locations[event_id].append((g["type"], minute, bool(g["late"])))
    return inv


def _good(ledger: list[dict]) -> list[dict]:
    """Ledger rows the event tables and files must hold: valid, first copies."""
    return [r for r in ledger if not r["malformed"] and not r.get("conflict")]


def files_checks(ledger: list[dict], inv: FileInventory, per_minute_rows: list[dict],
                 after_replay: bool = False) -> list[CheckResult]:
    """GCS versions of checks 1, 3, 4 and 5, from the ledger and the files.
    `after_replay`: a crash recovery replayed the subscription, so an event
    may sit in two pane files of its own minute folder; that is reported, not
    failed (per-minute counts are of distinct events either way)."""
    good = _good(ledger)
    missing = [r for r in good if r["event_id"] not in inv.locations]
    dupes = {e: locs for e, locs in inv.locations.items() if len(locs) > 1}
    misplaced = []
    for r in good:
        minute = r["event_time"][:16] + ":00Z"
        for (etype, folder_minute, too_late) in inv.locations.get(r["event_id"], []):
            if etype != r["event_type"] or folder_minute != minute:
                misplaced.append(r["event_id"])
    by_type = defaultdict(lambda: {"expected": 0, "failures": 0, "sample_missing_ids": []})
    for r in good:
        by_type[r["event_type"]]["expected"] += 1
    for r in missing:
        entry = by_type[r["event_type"]]
        entry["failures"] += 1
        if len(entry["sample_missing_ids"]) < 5:
            entry["sample_missing_ids"].append(r["event_id"])
    missing_rows = [{"event_type": t, **v} for t, v in sorted(by_type.items())]

    minute_rows = []
    for row in per_minute_rows:
        minute = row["minute"][:16] + ":00Z"
        gcs = inv.per_minute.get((minute, row["event_type"]), 0)
        minute_rows.append({**row, "gcs_count": gcs,
                            "failures": int(row["failures"] or row["producer_count"] != gcs)})
    late = [r for r in good if r["intended_delay_s"] > 0]
    late_rows = [{"late_events": len(late),
                  "in_late_folder": sum(1 for r in late for loc in inv.locations.get(r["event_id"], []) if loc[2]),
                  "failures": sum(1 for r in late if r["event_id"] in misplaced or r["event_id"] not in inv.locations)}]
    return [
        CheckResult("gcs_missing", "GCS: ledger events absent from the files", missing_rows,
                    [f"{inv.files} files scanned"] + [f"unrecognised path: {p}" for p in inv.bad_paths[:5]]),
        CheckResult("gcs_duplicates", "GCS: events in more than one file" + (" (replay: reported)" if after_replay else ""),
                    [{"events_in_several_files": len(dupes), "failures": 0 if after_replay else len(dupes),
                      "sample": sorted(dupes)[:5]}]),
        CheckResult("gcs_misplaced", "GCS: events outside their event-time minute folder",
                    [{"misplaced": len(misplaced), "failures": len(misplaced), "sample": misplaced[:5]}]),
        CheckResult("per_minute", "Per minute and type: producer = BigQuery = GCS", minute_rows),
        CheckResult("gcs_late", "GCS: late events in the folder of their event time", late_rows),
    ]


def content_check(client, project: str, dataset: str, ledger: list[dict]) -> CheckResult:
    """Content fidelity: the content hash recomputed from every stored column
    of each event's row in the dedup views (schemas.contract) equals the hash
    of what the producer published. A value changed on the way (rounding, a
    time zone, a truncated string) fails here even if the ids all match."""
    from google.cloud import bigquery

    expected = {(r["event_type"], r["event_id"]): r["content_hash"] for r in _good(ledger)}
    rows = []
    for event_type, spec in event_specs().items():
        ids = sorted(i for t, i in expected if t == event_type)
        if not ids:
            continue
        sql = f"SELECT * FROM `{project}.{dataset}.{spec.name}_dedup` WHERE event_id IN UNNEST(@ids)"
        config = bigquery.QueryJobConfig(query_parameters=[bigquery.ArrayQueryParameter("ids", "STRING", ids)])
        mismatched = []
        checked = 0
        for row in client.query(sql, job_config=config).result(timeout=300):
            row = dict(row.items())
            checked += 1
            if stored_content_hash(event_type, row) != expected[(event_type, row["event_id"])]:
                mismatched.append(row["event_id"])
        rows.append({"event_type": event_type, "checked": checked, "failures": len(mismatched),
                     "sample_changed_ids": mismatched[:5]})
    return CheckResult("content", "8. Content: every stored value as the producer published it", rows)


def ledger_rows(client, project: str, dataset: str, scope: Scope) -> list[dict]:
    sql = (f"SELECT event_id, event_type, event_time, content_hash, intended_delay_s, malformed, far_late, conflict, "
           f"copies "
           f"FROM `{project}.{dataset}.producer_ledger` WHERE (@run_id = '' OR run_id = @run_id) "
           f"AND event_time >= @start AND event_time < @end")
    rows = client.query(sql, job_config=_scope_config(scope)).result()
    return [{k: _jsonable(v) for k, v in row.items()} for row in rows]


def run_all(client, project: str, dataset: str, output_prefix: str | None, scope: Scope,
            after_replay: bool = False) -> dict:
    """Every check, plus the data the report's picture needs."""
    results = [
        CheckResult("missing", "1. Missing: ledger events absent from BigQuery",
                    run_sql(client, "01_missing.sql", project, dataset, scope)),
        CheckResult("unexpected", "2. Unexpected: BigQuery events not in the ledger",
                    run_sql(client, "02_unexpected.sql", project, dataset, scope)),
        CheckResult("duplicates", "3. Duplicates in the deduplicated views (raw copies explained)",
                    run_sql(client, "03_duplicates.sql", project, dataset, scope)),
    ]
    per_minute = run_sql(client, "04_per_minute.sql", project, dataset, scope)
    late = CheckResult("late", "5. Late events in the partition and minute of their event time",
                       run_sql(client, "05_late_events.sql", project, dataset, scope))
    malformed = CheckResult("malformed", "6. Malformed messages in the dead-letter table with a reason",
                            run_sql(client, "06_malformed.sql", project, dataset, scope))
    conflicts = CheckResult("conflicts", "7. Conflicting copies in the conflicts table, the first copy kept",
                            run_sql(client, "07_conflicts.sql", project, dataset, scope))
    lag = run_sql(client, "lag.sql", project, dataset, scope)
    ledger = ledger_rows(client, project, dataset, scope)
    if output_prefix:
        inv = scan_files(output_prefix, project, {r["event_id"] for r in ledger})
        results.extend(files_checks(ledger, inv, per_minute, after_replay))
    else:
        results.append(CheckResult("per_minute", "4. Per minute and type: producer = BigQuery", per_minute))
    results.extend([late, malformed, conflicts, content_check(client, project, dataset, ledger)])
    # An empty scope proves nothing: a wrong run id or an unloaded ledger fails.
    results.insert(0, CheckResult("scope", "0. The ledger has events in scope",
                                  [{"ledger_events": len(ledger), "failures": int(len(ledger) == 0)}]))
    return {"results": results, "lag": lag, "ledger_events": len(ledger),
            "ledger_malformed": sum(1 for r in ledger if r["malformed"]),
            "ledger_duplicated": sum(1 for r in ledger if r["copies"] > 1),
            "ledger_conflicts": sum(1 for r in ledger if r["conflict"]),
            # Late counts are about valid first copies (malformed ones go to dead letters).
            "ledger_late": sum(1 for r in _good(ledger) if r["intended_delay_s"] > 0 and not r["far_late"]),
            "ledger_far_late": sum(1 for r in _good(ledger) if r["far_late"])}


def wait_until_passed(client, project: str, dataset: str, output_prefix: str | None, scope: Scope,
                      timeout_s: float, after_replay: bool = False, keep_waiting=lambda: True,
                      on_wait=None, every_s: float = 5.0) -> dict:
    """Re-run every check until all pass, the timeout passes or
    `keep_waiting()` says stop (the job died); the last outcome is returned.
    Windows close a while after the last event, so a run converges."""
    deadline = time.monotonic() + timeout_s
    while True:
        outcome = run_all(client, project, dataset, output_prefix, scope, after_replay)
        failing = [r.name for r in outcome["results"] if not r.passed]
        if not failing or time.monotonic() >= deadline or not keep_waiting():
            return outcome
        if on_wait:
            on_wait(failing)
        time.sleep(every_s)
