"""End to end on the local stack: the highest simulator rate the job sustains
with nothing lost, and publish -> queryable-in-BigQuery / file-exists-in-GCS
latency for on-time events.

For each rate of a ladder, the simulator publishes on-time events only (no
faults) for `seconds`; a poller records when each event id first becomes
visible in BigQuery (incremental query on ingest_time) and in the minute folders' files
(listing + reading new files). A rate is sustained when every event reached
BigQuery within `drain_s` after the last publish.
"""

from __future__ import annotations

import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson

from localstack import LocalStack
from localstack.services import stop_pid
from schemas import contract

DATASET, BUCKET = "ecommerce", "bench-bucket"
TOPIC, SUB = contract.TOPIC, contract.SUBSCRIPTION


class Visibility:
    """Polls BigQuery and the files; first-seen wall time per event id."""

    def __init__(self, stack: LocalStack, since: datetime):
        from common.clients import bigquery_client

        self.stack = stack
        self.client = bigquery_client(stack.project)
        self.bq_seen: dict[str, float] = {}
        self.gcs_seen: dict[str, float] = {}
        self.since = since
        self._files_done: set[str] = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._poll_bq, daemon=True),
                         threading.Thread(target=self._poll_gcs, daemon=True)]

    def start(self):
        for t in self._threads:
            t.start()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)

    def _poll_bq(self):
        from google.cloud import bigquery

        from datetime import timedelta

        last = self.since
        table = f"`{self.stack.project}.{DATASET}.all_events`"
        while not self._stop.is_set():
            job = self.client.query(
                f"SELECT event_id, ingest_time FROM {table} WHERE ingest_time >= @last",
                job_config=bigquery.QueryJobConfig(query_parameters=[
                    # ingest_time is stamped at parse, before the insert: overlap
                    # the cursor so rows inserted out of order are not missed.
                    bigquery.ScalarQueryParameter("last", "TIMESTAMP", last - timedelta(seconds=30))]))
            now = time.time()
            for row in job.result():
                self.bq_seen.setdefault(row.event_id, now)
                last = max(last, row.ingest_time)
            self._stop.wait(0.2)

    def _poll_gcs(self):
        root = self.stack.gcs_root / BUCKET / "output"
        while not self._stop.is_set():
            now = time.time()
            for path in root.rglob("*.json") if root.exists() else []:
                if str(path) in self._files_done:
                    continue
                self._files_done.add(str(path))
                for line in path.read_bytes().splitlines():
                    self.gcs_seen.setdefault(orjson.loads(line)["event_id"], now)
            self._stop.wait(0.5)


def _percentiles(values):
    if not values:
        return {"p50": None, "p99": None, "max": None}
    arr = np.array(values)
    return {"p50": round(float(np.percentile(arr, 50)), 3), "p99": round(float(np.percentile(arr, 99)), 3),
            "max": round(float(arr.max()), 3)}


def run_rate(stack: LocalStack, rate: float, seconds: float, drain_s: float, run_id: str) -> dict:
    from simulator.runner import make_publisher
    from simulator.faults import FaultConfig
    from simulator.ledger import LedgerWriter, aggregate, read_lines
    from simulator.runner import Simulator

    tmp = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    visibility = Visibility(stack, datetime.now(timezone.utc))
    visibility.start()
    publisher = make_publisher()
    ledger = LedgerWriter(tmp / "ledger.jsonl")
    faults = FaultConfig(late_fraction=0, duplicate_fraction=0, malformed_fraction=0, conflict_fraction=0,
                         extra_field_fraction=0)
    sim = Simulator(publisher, publisher.topic_path(stack.project, TOPIC), ledger, run_id, rate=rate,
                    faults=faults, seed=int(rate))
    started = time.time()
    sim.run(duration_s=seconds)
    ledger.close()
    published_at = {r["event_id"]: datetime.fromisoformat(r["first_publish_time"]).timestamp()
                    for r in aggregate(read_lines(tmp / "ledger.jsonl"))}
    last_publish = time.time()
    deadline = last_publish + drain_s
    while time.time() < deadline and not published_at.keys() <= visibility.bq_seen.keys():
        time.sleep(0.5)
    bq_done = time.time()
    # Files appear when windows close (up to a window + watermark delay later).
    deadline = bq_done + 90
    while time.time() < deadline and not published_at.keys() <= visibility.gcs_seen.keys():
        time.sleep(1)
    visibility.stop()
    bq_lat = [visibility.bq_seen[e] - t for e, t in published_at.items() if e in visibility.bq_seen]
    gcs_lat = [visibility.gcs_seen[e] - t for e, t in published_at.items() if e in visibility.gcs_seen]
    missing_bq = len(published_at) - len(bq_lat)
    return {
        "rate": rate, "seconds": seconds, "published": len(published_at),
        "achieved_publish_rate": round(len(published_at) / max(1e-9, last_publish - started), 1),
        "missing_in_bigquery": missing_bq, "missing_in_files": len(published_at) - len(gcs_lat),
        "sustained": missing_bq == 0,
        "bigquery_latency_s": _percentiles(bq_lat), "file_latency_s": _percentiles(gcs_lat),
    }


def run(rates: list[float], seconds: float = 20, drain_s: float = 30) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    stack = LocalStack(workdir=workdir, project="bench-project")
    results = []
    with stack:
        stack.apply_env()
        from provision import provision

        provision(stack.project, DATASET, TOPIC, SUB, BUCKET)
        from localrun.process import start_job, wait_until_running

        job = start_job(stack, workdir / "job.log", subscription=SUB, dataset=DATASET, bucket=BUCKET)
        try:
            wait_until_running(job, workdir / "job.log")
            for rate in rates:
                result = run_rate(stack, rate, seconds, drain_s, f"bench-{int(rate)}")
                print(f"  rate {rate:>6}/s: published {result['published']}, missing in BigQuery "
                      f"{result['missing_in_bigquery']}, BigQuery p50/p99 {result['bigquery_latency_s']['p50']}/"
                      f"{result['bigquery_latency_s']['p99']} s, files p50/p99 {result['file_latency_s']['p50']}/"
                      f"{result['file_latency_s']['p99']} s", flush=True)
                results.append(result)
                if not result["sustained"]:
                    break
        finally:
            stop_pid(job.pid, timeout=30)
    sustained = [r["rate"] for r in results if r["sustained"]]
    return {"ladder": results, "highest_sustained_rate": max(sustained) if sustained else 0}
