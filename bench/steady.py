"""A local run that holds its rate: the job on the local stack at a fixed
rate for minutes, p99 publish -> visible in BigQuery per 30-s slice, and the
BigQuery emulator's own insertAll ceiling measured alone in the same run (so
the report says which part limits).

The instrument stays light: once a second it asks for the rows stamped since
the newest it has seen, with a small overlap (its time is measured and
reported as a share of the run); files are not polled at all.
Visibility is known to within that second, which the report states.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from schemas import contract

DATASET, BUCKET = "ecommerce", "bench-bucket"
TOPIC, SUB = contract.TOPIC, contract.SUBSCRIPTION

POLL_S = 1.0


class Visible:
    """First time each event id is visible in BigQuery, polling once a second.

    Each poll asks only for rows stamped (ingest_time, at parse) since the
    newest one seen, less an overlap for rows inserted after newer ones: twice
    the longest parse -> visible delay seen so far, at least 5 s. The overlap
    follows the run instead of a fixed 30 s, which returned ~6,000 rows a poll
    at 200/s and took a quarter of the run. `missed()` checks the cursor at the
    end against a full read. (tabledata.list from an offset would be cheaper
    still, but bqemulator 1.4 fails every later insert once a list call runs
    alongside one: "connection has an unfinished result".)"""

    def __init__(self, client, project: str, poll_s: float = POLL_S):
        self.client, self.project, self.poll_s = client, project, poll_s
        self.table = f"`{project}.{DATASET}.all_events`"
        self.last: datetime | None = None
        self.overlap_s = 5.0
        self.seen: dict[str, float] = {}
        self.query_seconds = 0.0
        self.queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Visible":
        newest = self._rows("SELECT MAX(ingest_time) AS t FROM {table}")[0].t
        self.last = newest or datetime(1970, 1, 1, tzinfo=timezone.utc)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _rows(self, sql: str, since: datetime | None = None):
        from google.cloud import bigquery

        params = [bigquery.ScalarQueryParameter("since", "TIMESTAMP", since)] if since else []
        return list(self.client.query(sql.format(table=self.table),
                                      job_config=bigquery.QueryJobConfig(query_parameters=params)).result())

    def poll(self) -> None:
        t = time.perf_counter()
        rows = self._rows("SELECT event_id, ingest_time FROM {table} WHERE ingest_time >= @since",
                          self.last - timedelta(seconds=self.overlap_s))
        now = datetime.now(timezone.utc)
        for row in rows:
            if row.event_id not in self.seen:
                self.seen[row.event_id] = now.timestamp()
                self.overlap_s = max(self.overlap_s, 2 * (now - row.ingest_time).total_seconds())
            self.last = max(self.last, row.ingest_time)
        self.query_seconds += time.perf_counter() - t
        self.queries += 1

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll()

    def missed(self, since: datetime) -> set[str]:
        """Ids stored since `since` that the polls did not see (none if the overlap held)."""
        rows = self._rows("SELECT event_id FROM {table} WHERE ingest_time >= @since", since)
        return {row.event_id for row in rows} - self.seen.keys()


def emulator_ceiling(client, project: str, seconds: float = 30.0, batch: int = 500) -> dict:
    """Rows/s the BigQuery emulator takes through insertAll alone: rows of
    the job's order table, batches of `batch` (the job's default), one
    client, for `seconds`."""
    from google.cloud import bigquery

    from bench.core import START, generate
    from pipeline.transforms import Accepted, table_row_maker
    from pipeline.validation import Limits, Rejected, parse_message
    from schemas import event_specs, table_specs
    from schemas.bigquery import api_schema

    spec = event_specs()["order"]
    table_id = f"{project}.{DATASET}.bench_ceiling_{int(time.time())}"
    client.create_table(bigquery.Table(table_id, schema=[bigquery.SchemaField.from_api_repr(c)
                                                         for c in api_schema(table_specs()[spec.name])]))
    to_row, rows = table_row_maker("bench"), []
    for data, attrs in generate(20_000):
        try:
            event = parse_message(data, attrs, None, now=START + timedelta(days=1), limits=Limits(max_event_age=None))
        except Rejected:
            continue
        if event.event_type == "order":
            rows.append(to_row(Accepted(event, None, START))[1])
    sent, i, t = 0, 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        chunk = rows[i:i + batch] or rows[:batch]
        i = (i + batch) % len(rows)
        errors = client.insert_rows_json(table_id, chunk, row_ids=[None] * len(chunk), retry=None, timeout=60)
        assert not errors, errors[:3]
        sent += len(chunk)
    elapsed = time.perf_counter() - t
    client.delete_table(table_id, not_found_ok=True)
    return {"rows": sent, "seconds": round(elapsed, 1), "rows_per_s": round(sent / elapsed), "batch": batch}


def slices(published_at: dict, seen: dict, slice_s: float) -> list[dict]:
    """p50/p99/max of publish -> visible per slice of publish time."""
    if not published_at:
        return []
    start = min(published_at.values())
    by_slice: dict[int, list] = {}
    missing: dict[int, int] = {}
    for event_id, t in published_at.items():
        k = int((t - start) // slice_s)
        if event_id in seen:
            by_slice.setdefault(k, []).append(seen[event_id] - t)
        else:
            missing[k] = missing.get(k, 0) + 1
    out = []
    for k in sorted(set(by_slice) | set(missing)):
        # A slice with events never seen has no honest percentile: None, with the count missing.
        lags = np.array(by_slice.get(k) or [np.nan])
        ok = not missing.get(k)
        out.append({"slice": k, "from_s": k * slice_s, "events": len(by_slice.get(k, [])),
                    "missing": missing.get(k, 0),
                    "p50_s": round(float(np.percentile(lags, 50)), 2) if ok else None,
                    "p99_s": round(float(np.percentile(lags, 99)), 2) if ok else None,
                    "max_s": round(float(lags.max()), 2) if ok else None})
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of a process now, in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (Linux /proc)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _provisioned_stack(prefix: str):
    """A fresh emulator stack, provisioned, its environment applied; stopped
    (every process it started) on the way out. Yields (stack, workdir)."""
    from localstack import LocalStack
    from provision import provision

    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    with LocalStack(workdir=workdir, project="bench-project") as stack:
        stack.apply_env()
        provision(stack.project, DATASET, TOPIC, SUB, BUCKET)
        yield stack, workdir


@contextlib.contextmanager
def _running_job(stack, workdir: Path, job_args: tuple = ()):
    """`python -m localrun` on the stack, once it says it runs; stopped by PID on the way out."""
    from localrun.process import start_job, wait_until_running
    from localstack.services import stop_pid

    job = start_job(stack, workdir / "job.log", subscription=SUB, dataset=DATASET, bucket=BUCKET, extra=job_args)
    try:
        wait_until_running(job, workdir / "job.log")
        yield job
    finally:
        stop_pid(job.pid, timeout=30)


def _simulator(stack, workdir: Path, run_id: str, rate: float, seed: int, **faults):
    """The simulator publishing on-time, well-formed events (plus `faults`), and its ledger."""
    from simulator.faults import FaultConfig
    from simulator.ledger import LedgerWriter
    from simulator.runner import Simulator, make_publisher

    ledger = LedgerWriter(workdir / "ledger.jsonl")
    config = FaultConfig(late_fraction=0, duplicate_fraction=0, malformed_fraction=0, conflict_fraction=0,
                         extra_field_fraction=0, **faults)
    publisher = make_publisher()
    sim = Simulator(publisher, publisher.topic_path(stack.project, TOPIC), ledger, run_id, rate=rate,
                    faults=config, seed=seed)
    return sim, ledger


def run(rate: float, minutes: float, slice_s: float = 30.0, ceiling_s: float = 30.0, progress=print,
        poll_s: float = POLL_S, job_args: tuple = ()) -> dict:
    from common.clients import bigquery_client
    from simulator.ledger import aggregate, read_lines

    with _provisioned_stack("bench-steady-") as (stack, workdir):
        client = bigquery_client(stack.project)
        progress(f"  BigQuery emulator alone: insertAll for {ceiling_s:.0f} s ...")
        ceiling = emulator_ceiling(client, stack.project, ceiling_s)
        progress(f"  BigQuery emulator alone: {ceiling['rows_per_s']:,} rows/s")
        with _running_job(stack, workdir, job_args) as job:
            since = datetime.now(timezone.utc)
            visible = Visible(client, stack.project, poll_s=poll_s).start()
            sim, ledger = _simulator(stack, workdir, "steady", rate, seed=13)
            progress(f"  the job at {rate:.0f} events/s for {minutes:g} minutes ...")
            pids = {"job": job.pid, "bigquery_emulator": stack.bigquery.pid, "pubsub_emulator": stack.pubsub.pid}
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            memory = {"job_rss_mb_start": rss_mb(job.pid)}
            started = time.monotonic()
            sim.run(duration_s=minutes * 60, progress=None)
            memory["job_rss_mb_end"] = rss_mb(job.pid)
            ledger.close()
            wall = time.monotonic() - started
            cpu = {name: round((cpu_seconds(pid) - cpu_before[name]) / wall, 2) for name, pid in pids.items()}
            published_at = {r["event_id"]: datetime.fromisoformat(r["first_publish_time"]).timestamp()
                            for r in aggregate(read_lines(workdir / "ledger.jsonl"))}
            deadline = time.time() + 60
            while time.time() < deadline and not published_at.keys() <= visible.seen.keys():
                time.sleep(1)
            visible.stop()
            cursor_misses = len(visible.missed(since))
    per_slice = slices(published_at, visible.seen, slice_s)
    return {"rate": rate, "minutes": minutes, "job_args": list(job_args), "published": len(published_at),
            "achieved_rate": round(len(published_at) / wall, 1),
            "missing": len(published_at.keys() - visible.seen.keys()),
            "worst_slice_p99_s": (None if any(s["p99_s"] is None for s in per_slice)
                                  else max((s["p99_s"] for s in per_slice), default=None)),
            "slices": per_slice, "emulator_ceiling": ceiling, "cores_used": cpu, "memory": memory,
            "instrument": {"poll_s": poll_s, "cursor_misses": cursor_misses,
                           "final_overlap_s": round(visible.overlap_s, 1), "queries": visible.queries,
                           "query_share_of_run": round(visible.query_seconds / max(wall, 1e-9), 3)}}


def alert_latency(rate: float = 100.0, minutes: float = 2.0, bursts_per_minute: float = 12.0,
                  progress=print) -> dict:
    """Anomaly-alert detection latency at `rate` events/s of background load
    with bot bursts: from the Pub/Sub publish of the event that crosses the
    threshold (crossing_publish_time in the alert) to the publish of the alert
    on the alerts topic (the message's publish time). Both stamps come from
    the same Pub/Sub emulator clock; the reader's own delay is not in them."""
    import orjson

    from common.clients import subscriber_client
    from schemas.contract import ALERT_THRESHOLD, ALERTS_SUBSCRIPTION, minute_of, parse_timestamp
    from simulator.ledger import aggregate, read_lines

    latencies: dict[str, float] = {}
    with _provisioned_stack("bench-alerts-") as (stack, workdir), _running_job(stack, workdir):
        sub = subscriber_client()
        path = sub.subscription_path(stack.project, ALERTS_SUBSCRIPTION)

        def pull_once(wait_s: float = 5) -> None:
            from google.api_core import exceptions as gexc

            try:
                response = sub.pull(request={"subscription": path, "max_messages": 100}, timeout=wait_s)
            except gexc.DeadlineExceeded:
                return
            for received in response.received_messages:
                alert = orjson.loads(received.message.data)
                published = received.message.publish_time.timestamp()
                crossing = parse_timestamp(alert["crossing_publish_time"]).timestamp()
                latencies.setdefault(alert["alert_id"], published - crossing)
            if response.received_messages:
                sub.acknowledge(request={"subscription": path,
                                         "ack_ids": [m.ack_id for m in response.received_messages]})

        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                pull_once()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        sim, ledger = _simulator(stack, workdir, "alerts", rate, seed=17, bot_bursts_per_minute=bursts_per_minute)
        progress(f"  anomaly alerts: {rate:.0f} events/s with {bursts_per_minute:g} bot bursts a minute for "
                 f"{minutes:g} minutes ...")
        stats = sim.run(duration_s=minutes * 60, progress=None)
        ledger.close()
        per_user_minute: dict = {}
        for row in aggregate(read_lines(workdir / "ledger.jsonl")):
            if row["user_id"] and not row["malformed"] and not row["conflict"]:
                key = (row["user_id"], minute_of(parse_timestamp(row["event_time"])))
                per_user_minute[key] = per_user_minute.get(key, 0) + 1
        expected = sum(1 for n in per_user_minute.values() if n > ALERT_THRESHOLD)
        deadline = time.monotonic() + 60
        while len(latencies) < expected and time.monotonic() < deadline:
            time.sleep(0.5)
        stop.set()
        reader.join(timeout=15)
        sub.close()
    values = np.array(sorted(latencies.values()) or [np.nan])
    return {"rate": rate, "minutes": minutes, "bursts": stats.bot_bursts, "expected_alerts": expected,
            "alerts": len(latencies),
            "p50_s": round(float(np.percentile(values, 50)), 3), "p99_s": round(float(np.percentile(values, 99)), 3),
            "max_s": round(float(values.max()), 3)}


def main(argv=None) -> int:
    """python -m bench.steady --rate 200 --minutes 10 [--json PATH]: the steady
    run alone (the emulator stack is started and stopped by it), its slices
    printed; exit status 1 when a slice's p99 is above 2 s. `python -m bench`
    runs it beside the other measurements."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.steady", description=main.__doc__)
    parser.add_argument("--rate", type=float, default=200.0, help="events/s (default 200: the documented local rate)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    result = run(args.rate, args.minutes)
    for s in result["slices"]:
        print(f"  from {s['from_s']:>5.0f} s: {s['events']:>6} events, p50 {s['p50_s']} s, p99 {s['p99_s']} s"
              + (f", {s['missing']} not seen" if s["missing"] else ""))
    print(f"worst slice p99 {result['worst_slice_p99_s']} s; missing {result['missing']} of {result['published']:,}; "
          f"cores used {result['cores_used']}; job memory {result['memory']}; BigQuery emulator alone "
          f"{result['emulator_ceiling']['rows_per_s']:,} rows/s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["worst_slice_p99_s"] is not None and result["worst_slice_p99_s"] <= 2.0 else 1


if __name__ == "__main__":
    import sys

    sys.exit(main())
