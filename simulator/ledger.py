"""The producer ledger: ground truth of what the simulator published.

The JSONL file gets one line per copy actually published (written when the
publish is confirmed), so a simulator killed mid-run leaves a ledger that is
still exactly what reached Pub/Sub. `aggregate()` folds the lines into one
row per logical event for the `producer_ledger` table.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

import orjson

from schemas import LEDGER_TABLE


class LedgerWriter:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "ab", buffering=0)
        self._lock = threading.Lock()

    def record(self, line: dict) -> None:
        data = orjson.dumps(line) + b"\n"
        with self._lock:  # publish callbacks run on the client's threads
            self._fh.write(data)

    def record_copy(self, run_id: str, plan, copy_no: int, publish_time: str, confirmed_time: str | None = None,
                    failed_attempt_times: list[str] = ()) -> None:
        """One published copy of a simulator.faults.Plan, once its publish is
        confirmed. Pub/Sub stamps the message somewhere between `publish_time`
        (the call) and `confirmed_time` (its answer); an attempt that failed may
        have been published too, at or after its own time."""
        self.record({
            "run_id": run_id, "event_id": plan.event_id, "event_type": plan.event_type,
            "event_time": plan.event_time, "content_hash": plan.content_hash, "payload_sha256": plan.payload_sha256,
            "publish_time": publish_time, "confirmed_time": confirmed_time or publish_time,
            "failed_attempt_times": list(failed_attempt_times), "copy": copy_no,
            "intended_delay_s": plan.intended_delay_s,
            "malformed": plan.malformed, "malformed_kind": plan.malformed_kind, "far_late": plan.far_late,
            "conflict": plan.conflict, "extra_fields": plan.extra_fields, "user_id": plan.user_id, "bot": plan.bot,
            "change_type": plan.change_type, "changed_at": plan.changed_at, "entity": plan.entity,
        })

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def read_lines(path: Path) -> list[dict]:
    lines = []
    with open(path, "rb") as fh:
        for raw in fh:
            raw = raw.strip()
            if raw:
                lines.append(orjson.loads(raw))
    return lines


def aggregate(lines: list[dict]) -> list[dict]:
    """One row per (run, distinct message body) in the producer_ledger
    table's shape: copies of one body are folded, a conflicting copy (another
    body with the same identity) is a row of its own, marked `conflict` when
    an earlier-published body holds the identity."""
    rows: dict[tuple[str, str], dict] = {}
    for line in lines:
        key = (line["run_id"], line["payload_sha256"])
        row = rows.get(key)
        if row is None:
            row = rows[key] = {
                "run_id": line["run_id"], "event_id": line["event_id"], "event_type": line["event_type"],
                "event_time": line["event_time"], "content_hash": line.get("content_hash"),
                "payload_sha256": line["payload_sha256"], "first_publish_time": None, "publish_times": [],
                "confirmed_times": [], "failed_attempt_times": [],
                "intended_delay_s": line["intended_delay_s"], "copies": 0, "malformed": line["malformed"],
                "malformed_kind": line.get("malformed_kind"), "far_late": line.get("far_late", False),
                "conflict": line.get("conflict", False), "extra_fields": line.get("extra_fields", []),
                "user_id": line.get("user_id"), "bot": line.get("bot", False),
                "change_type": line.get("change_type"), "changed_at": line.get("changed_at"),
                "entity": line.get("entity"),
            }
        row["publish_times"].append(line["publish_time"])
        row["confirmed_times"].append(line.get("confirmed_time") or line["publish_time"])
        row["failed_attempt_times"].extend(line.get("failed_attempt_times") or [])
        row["copies"] += 1
    for row in rows.values():
        for name in ("publish_times", "confirmed_times", "failed_attempt_times"):
            row[name].sort()
        row["first_publish_time"] = row["publish_times"][0]
    # Which content of an identity is "the" event is decided by what was
    # published first, not by what the simulator planned: a failed publish
    # retried during an outage can put a planned conflicting copy first.
    groups: dict = {}
    for row in rows.values():
        if not row["malformed"] and row["event_id"]:  # one version of an event: the event, or one change of it
            key = (row["run_id"], row["event_type"], row["event_id"], row["change_type"], row["changed_at"])
            groups.setdefault(key, []).append(row)
    for group in groups.values():
        group.sort(key=lambda r: (r["first_publish_time"], r["payload_sha256"]))
        for i, row in enumerate(group):
            row["conflict"] = i > 0
    return list(rows.values())


def load_to_bigquery(path: Path, project: str, dataset: str) -> int:
    """Load the aggregated ledger into producer_ledger (replacing this run's
    rows: the load is idempotent per run). Returns the number of rows."""
    from google.cloud import bigquery

    from common.clients import bigquery_client

    rows = aggregate(read_lines(path))
    client = bigquery_client(project)
    table = f"{project}.{dataset}.{LEDGER_TABLE}"
    run_ids = sorted({r["run_id"] for r in rows})
    if run_ids:
        job = client.query(f"DELETE FROM `{table}` WHERE run_id IN UNNEST(@runs)", job_config=bigquery.QueryJobConfig(
            query_parameters=[bigquery.ArrayQueryParameter("runs", "STRING", run_ids)]))
        job.result(timeout=120)
    if not rows:
        return 0
    data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
                                    write_disposition=bigquery.WriteDisposition.WRITE_APPEND)
    # No size: the client then uses a resumable upload (the emulator does not
    # support multipart loads).
    job = client.load_table_from_file(io.BytesIO(data), table, job_config=config, rewind=True)
    job.result(timeout=300)
    return len(rows)
