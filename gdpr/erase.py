"""A data subject's erasure (GDPR, seed 003): everything the pipeline holds
about one user or customer (one id space), removed, audited, verifiable.

Order of work, each step re-runnable:

1. **suppress**: the subject's sha256 goes to `erased_subjects`; the job
   (and the backfill) drop what they send from then on (pipeline/erasure.py);
2. **files**: every minute folder holding one of their events (found
   through BigQuery, which holds the same events) is rewritten without
   their lines: a file keeps its name (or is deleted when nothing is
   left), the folder's manifests and `files_written` follow. A folder the job
   may still add to (its minute plus the allowed lateness has not passed)
   is left for a later run of the same request, which finds it in the log;
3. **metrics**: a correction generation per (minute, type) takes their
   events, the user and their late arrivals out of `metrics_per_minute`
   (counts, no personal data, but they must keep agreeing with the tables);
4. **tables** (DML): their rows in the event tables, `alerts`,
   `user_sessions`, `producer_ledger`, and the dead letters and conflicts
   whose payload names them. Rows still in BigQuery's streaming buffer cannot
   be deleted yet (BigQuery refuses DML on them for up to 90 minutes): such a
   table is left for a later run;
5. **audit**: one `erasure_log` row per step (counts, what is pending; no id).

`verify` proves nothing remains: sql/gdpr/verify_erased.sql over every table,
and a read of every folder the request rewrote.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

from provision import substitute
from schemas import (ALERTS_TABLE, CONFLICTS_TABLE, DEAD_LETTER_TABLE, ERASED_SUBJECTS_TABLE, ERASURE_LOG_TABLE,
                     FILES_WRITTEN_TABLE, LEDGER_TABLE, METRICS_TABLE, SESSIONS_TABLE, event_specs)
from schemas.contract import format_timestamp, minute_folder, parse_file_path, read_line, subject_hash

_log = logging.getLogger("gdpr")
SQL = Path(__file__).resolve().parent.parent / "sql" / "gdpr"
# After minute end + allowed lateness, before a folder counts as closed. This
# command runs beside the job and cannot read its watermark, so it decides on
# the clock, and only when to rewrite a folder: too early and the job may add
# a late file after the rewrite, but that file cannot hold the subject (their
# events are suppressed before any folder is touched), and verify checks the
# folders. Where an event lands is never decided here.
OPEN_MARGIN = timedelta(minutes=2)


@dataclass
class Plan:
    """What the subject's erasure has to do (and, once done, did)."""

    request_id: str
    rows: dict = field(default_factory=dict)         # table -> rows naming the subject
    folders: list = field(default_factory=list)      # (event_type, minute) holding their events
    open_folders: list = field(default_factory=list)  # of those, the ones the job may still add to
    metric_cells: list = field(default_factory=list)  # (minute, type, events, late, far_late)


def _query(client, sql: str, params: dict) -> list[dict]:
    from reconcile.checks import query

    return query(client, sql, params)


# Tables beyond the event tables that name a subject in a column, and those
# that may hold one inside a payload. The warehouse's daily tables hold counts
# only (rebuild the subject's days to take them out of the counts too).
SUBJECT_COLUMNS = {ALERTS_TABLE: "user_id", SESSIONS_TABLE: "user_id", LEDGER_TABLE: "user_id",
                   "dim_customer": "customer_id", "fact_order_events": "customer_id"}
PAYLOAD_COLUMNS = {DEAD_LETTER_TABLE: "payload", CONFLICTS_TABLE: "payload", "dq_quarantine": "row_json"}


def user_tables() -> dict[str, str]:
    """Event table -> the column naming its user (none for inventory)."""
    return {spec.name: spec.user_field for spec in event_specs().values() if spec.user_field}


def find(client, project: str, dataset: str, subject: str, request_id: str, allowed_lateness_s: int,
         now: datetime, settle: timedelta = OPEN_MARGIN) -> Plan:
    d = f"`{project}.{dataset}"
    plan = Plan(request_id)
    folders = set()
    for event_type, spec in event_specs().items():
        if not spec.user_field:
            continue
        rows = _query(client, f"SELECT TIMESTAMP_TRUNC(event_time, MINUTE) AS minute, publish_time, change_type "
                              f"FROM {d}.{spec.name}` WHERE {spec.user_field} = @s", {"s": subject})
        plan.rows[spec.name] = len(rows)
        cells: dict = {}
        for r in rows:
            folders.add((event_type, r["minute"]))
            if r["change_type"] is None:
                cells.setdefault(r["minute"], []).append(r["publish_time"])
        for minute, publishes in sorted(cells.items()):
            end = minute + timedelta(minutes=1)
            late = sum(1 for p in publishes if p is not None and end < p <= end + timedelta(seconds=allowed_lateness_s))
            far = sum(1 for p in publishes if p is not None and p > end + timedelta(seconds=allowed_lateness_s))
            plan.metric_cells.append((minute, event_type, len(publishes), late, far))
    for table, column in SUBJECT_COLUMNS.items():
        plan.rows[table] = _query(client, f"SELECT COUNT(*) AS n FROM {d}.{table}` WHERE {column} = @s",
                                  {"s": subject})[0]["n"]
    for table, column in PAYLOAD_COLUMNS.items():
        plan.rows[table] = _query(client, f"SELECT COUNT(*) AS n FROM {d}.{table}` "
                                          f"WHERE STRPOS(IFNULL({column}, ''), @s) > 0", {"s": subject})[0]["n"]
    # folders an earlier run of this request left for later (their events are gone from the tables by now)
    for r in _query(client, f"SELECT details FROM {d}.{ERASURE_LOG_TABLE}` WHERE request_id = @r AND step = 'pending'",
                    {"r": request_id}):
        for event_type, minute in (orjson.loads(r["details"]).get("folders") or []):
            folders.add((event_type, datetime.fromisoformat(minute)))
    plan.folders = sorted(folders)
    closes = lambda minute: minute + timedelta(minutes=1, seconds=allowed_lateness_s) + settle  # noqa: E731
    plan.open_folders = [f for f in plan.folders if closes(f[1]) > now]
    return plan


def _user_of_line(line: dict) -> str | None:
    spec = event_specs().get(line.get("event_type"))
    return line.get(spec.user_field) if spec and spec.user_field else None


def rewrite_folder(writer, client, project: str, dataset: str, prefix: str, event_type: str, minute: datetime,
                   subject: str) -> dict:
    """The folder without the subject's lines; manifests and files_written
    follow. Returns {lines, rewritten, deleted}."""
    folder = minute_folder(prefix, event_type, minute)
    paths = writer.list(folder + "/")
    removed, rewritten, deleted = 0, {}, []
    for path in paths:
        parsed = parse_file_path(path)
        if parsed is None:
            continue
        raw = writer.read(path)
        kept = [line for line in raw.splitlines(keepends=True)
                if line.strip() and _user_of_line(read_line(line)) != subject]
        gone = sum(1 for line in raw.splitlines() if line.strip()) - len(kept)
        if not gone:
            continue
        removed += gone
        if kept:
            data = b"".join(kept)
            writer.replace(path, data)
            rewritten[path] = (len(kept), hashlib.sha256(data).hexdigest())
        else:
            writer.delete(path)
            deleted.append(path)
    if not removed:
        return {"lines": 0, "rewritten": 0, "deleted": 0}
    for path in paths:  # every manifest of the folder lists its files as they are now
        if not path.rsplit("/", 1)[1].startswith("_MANIFEST"):
            continue
        doc = orjson.loads(writer.read(path))
        names = {p.rsplit("/", 1)[1]: p for p in list(rewritten) + deleted}
        files = []
        for entry in doc["files"]:
            full = names.get(entry["name"])
            if full in deleted:
                continue
            files.append({"name": entry["name"], "lines": rewritten[full][0] if full in rewritten else entry["lines"]})
        doc.update(files=files, lines=sum(f["lines"] for f in files))
        writer.replace(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    t = f"`{project}.{dataset}.{FILES_WRITTEN_TABLE}`"
    for path, (lines, sha) in rewritten.items():
        _query(client, f"UPDATE {t} SET lines = @n, sha256 = @h WHERE path = @p", {"n": lines, "h": sha, "p": path})
    for path in deleted:
        _query(client, f"DELETE FROM {t} WHERE path = @p", {"p": path})
    return {"lines": removed, "rewritten": len(rewritten), "deleted": len(deleted)}


def _metrics_rows(plan: Plan, now: datetime) -> list[dict]:
    """One correction generation per (minute, type): minus the subject's
    events, minus one user, minus their late arrivals (README "GDPR")."""
    rows = []
    for minute, event_type, events, late, far in plan.metric_cells:
        generation = f"erasure-{plan.request_id}"[:64]
        metrics_id = hashlib.sha256(f"{event_type}\x00{minute.isoformat()}\x00{generation}".encode()).hexdigest()[:40]
        rows.append({"metrics_id": metrics_id, "minute": format_timestamp(minute), "event_type": event_type,
                     "generation": generation, "version": 1, "is_final": True, "events": -events,
                     "unique_users": -1, "duplicates": 0, "conflicts": 0, "dead_letters": 0,
                     "dead_letter_reasons": [], "late": -late, "far_late": -far, "emitted_at": format_timestamp(now),
                     "job_incarnation": None})
    return rows


def _log_row(request_id: str, requested_at: datetime, step: str, removed: int, details: dict | None) -> dict:
    now = datetime.now(timezone.utc)
    return {"log_id": hashlib.sha256(f"{request_id}\x00{step}\x00{now.isoformat()}".encode()).hexdigest()[:40],
            "request_id": request_id, "requested_at": format_timestamp(requested_at), "logged_at": format_timestamp(now),
            "step": step, "removed": removed, "details": orjson.dumps(details).decode() if details else None}


def _insert(client, table: str, rows: list[dict], key: str) -> None:
    if not rows:
        return
    errors = client.insert_rows_json(table, rows, row_ids=[r[key] for r in rows])
    if errors:
        raise RuntimeError(f"insert into {table} failed: {errors[:3]}")


def erase(client, writer, project: str, dataset: str, prefix: str | None, subject: str, request_id: str | None,
          allowed_lateness_s: int, now: datetime | None = None, settle: timedelta = OPEN_MARGIN) -> dict:
    """Do the erasure (see the module docstring). Returns the outcome."""
    now = now or datetime.now(timezone.utc)
    request_id = request_id or f"erasure-{uuid.uuid4().hex[:12]}"
    d = f"{project}.{dataset}"
    plan = find(client, project, dataset, subject, request_id, allowed_lateness_s, now, settle)
    log = []
    # 1. suppress first: nothing the subject sends from now on is stored again
    _insert(client, f"{d}.{ERASED_SUBJECTS_TABLE}", [{"subject_hash": subject_hash(subject), "erased_at":
                                                       format_timestamp(now), "request_id": request_id}],
            "subject_hash")
    log.append(("suppressed", 1, None))
    # 2. the files
    pending = {}
    if prefix:
        done = [f for f in plan.folders if f not in plan.open_folders]
        counts = {"lines": 0, "rewritten": 0, "deleted": 0}
        for event_type, minute in done:
            out = rewrite_folder(writer, client, project, dataset, prefix.rstrip("/"), event_type, minute, subject)
            counts = {k: counts[k] + out[k] for k in counts}
        log.append(("files", counts["lines"], {"folders": [(t, m.isoformat()) for t, m in done],
                                               "files_rewritten": counts["rewritten"],
                                               "files_deleted": counts["deleted"]}))
        if plan.open_folders:
            pending["folders"] = [(t, m.isoformat()) for t, m in plan.open_folders]
    # 3. the metrics
    metric_rows = _metrics_rows(plan, now)
    _insert(client, f"{d}.{METRICS_TABLE}", metric_rows, "metrics_id")
    log.append(("metrics", len(metric_rows), {"cells": len(metric_rows)}))
    # 4. the tables
    statements = {table: f"DELETE FROM `{d}.{table}` WHERE {column} = @s" for table, column in user_tables().items()}
    statements.update({t: f"DELETE FROM `{d}.{t}` WHERE {c} = @s" for t, c in SUBJECT_COLUMNS.items()})
    statements.update({t: f"DELETE FROM `{d}.{t}` WHERE STRPOS(IFNULL({c}, ''), @s) > 0"
                       for t, c in PAYLOAD_COLUMNS.items()})
    for table, sql in statements.items():
        if not plan.rows.get(table):
            continue
        try:
            _query(client, sql, {"s": subject})
            log.append((table, plan.rows[table], None))
        except Exception as exc:  # noqa: BLE001 - the streaming buffer: said, left for later
            if "streaming buffer" not in str(exc):
                raise
            pending.setdefault("tables", []).append(table)
    if pending:
        log.append(("pending", 0, pending))
    else:
        log.append(("done", sum(n for _, n, _ in log if isinstance(n, int)), None))
    _insert(client, f"{d}.{ERASURE_LOG_TABLE}", [_log_row(request_id, now, s, n, det) for s, n, det in log], "log_id")
    return {"request_id": request_id, "plan": plan, "log": log, "pending": pending}


def verify(client, reader, project: str, dataset: str, prefix: str | None, subject: str,
           request_id: str | None) -> dict:
    """(table -> rows still naming the subject, folders -> lines still
    theirs). Empty both ways: nothing remains."""
    sql = substitute((SQL / "verify_erased.sql").read_text(), project, dataset)
    left = {r["where_found"]: r["rows_left"] for r in _query(client, sql, {"subject": subject}) if r["rows_left"]}
    lines_left = {}
    if prefix and request_id:
        folders = set()
        for r in _query(client, f"SELECT details FROM `{project}.{dataset}.{ERASURE_LOG_TABLE}` "
                                "WHERE request_id = @r AND step IN ('files', 'pending')", {"r": request_id}):
            folders |= {tuple(f) for f in orjson.loads(r["details"]).get("folders", [])}
        for event_type, minute in sorted(folders):
            folder = minute_folder(prefix.rstrip("/"), event_type, datetime.fromisoformat(minute))
            for path in reader.list(folder + "/"):
                if parse_file_path(path) is None:
                    continue
                n = sum(1 for line in reader.read(path).splitlines()
                        if line.strip() and _user_of_line(read_line(line)) == subject)
                if n:
                    lines_left[path] = n
    return {"tables": left, "files": lines_left}

