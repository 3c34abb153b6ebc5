"""Throughput of the job's core, on generated events (no I/O services).

* `reference`: plain Python on one core, the practical limit: orjson parse, a
  set for dedup, a Counter per (type, minute). Also the same loop calling the
  job's own `parse_message` (schema validation), to show its share.
* `graph`: the job's own transforms (ParseEvents -> DeduplicateEvents ->
  MinuteFiles to a local folder) on the FnApiRunner,
  the SDK harness Dataflow workers use, with one worker: events/s per core.

Run one size per process (`python -m bench.core graph 100000`) so peak memory
(ru_maxrss) belongs to that size alone.
"""

from __future__ import annotations

import json
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import orjson

from simulator.faults import FaultConfig, plan
from simulator.world import World

START = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
EVENT_TYPES = ["order", "inventory", "user_activity"]


def generate(n: int, seed: int = 1) -> list[tuple[bytes, dict]]:
    """n messages, 60 events per event-time second spread over n/600 minutes,
    with the simulator's duplicates (3%) and malformed messages (2%)."""
    world, rng = World(seed=seed, time_scale=0.2), random.Random(seed)
    faults = FaultConfig(late_fraction=0, far_late_fraction=0)
    out = []
    i = 0
    while len(out) < n:
        now = START + timedelta(milliseconds=100 * i)
        for p in plan(world.next_event(EVENT_TYPES[i % 3], now), faults, rng):
            for m in p.messages:
                out.append((m.data, m.attributes))
        i += 1
    return out[:n]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reference(messages) -> dict:
    t = time.perf_counter()
    seen, counts = set(), Counter()
    for data, attrs in messages:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(payload, dict):
            continue
        # The contract's identity, roughly: enough to count the work of a set lookup.
        eid = (payload.get("event_type"), payload.get("inventory_id") or payload.get("order_id"),
               payload.get("status"), payload.get("timestamp"))
        if eid in seen:
            continue
        seen.add(eid)
        ts = payload.get("updated_at") or payload.get("order_date") or payload.get("timestamp") or ""
        counts[(payload.get("event_type"), str(ts)[:16])] += 1
    plain = time.perf_counter() - t

    from pipeline.validation import Limits, Rejected, parse_message

    limits = Limits(max_event_age=None)
    now = START + timedelta(days=1)
    t = time.perf_counter()
    seen, counts = set(), Counter()
    for data, attrs in messages:
        try:
            event = parse_message(data, attrs, None, now=now, limits=limits)
        except Rejected:
            continue
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        counts[(event.event_type, event.event_time.replace(second=0, microsecond=0))] += 1
    validated = time.perf_counter() - t
    n = len(messages)
    return {"events": n, "plain_events_per_s": round(n / plain), "validated_events_per_s": round(n / validated)}


def write_messages(messages, path: str) -> None:
    with open(path, "wb") as fh:
        for data, attrs in messages:
            fh.write(orjson.dumps({"d": data.decode("utf-8", "replace"), "a": attrs}) + b"\n")


def graph(source: str) -> dict:
    """The core graph over a file of messages written by `write_messages`
    (generated in another process, so peak RSS here is the pipeline's)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.graph import Sinks, build_pipeline
    from pipeline.options import EcommerceOptions

    class NoTables:
        """The table sink left out: this measures the graph, not BigQuery."""

        def write(self, label, rows, dead_letter_table=False):
            return rows | label >> beam.Filter(lambda _: False)

    tmp = tempfile.mkdtemp(prefix="bench-")
    with open(source, "rb") as fh:
        n = sum(1 for _ in fh)
    options = PipelineOptions(["--project=bench-project", f"--output_prefix={tmp}/output", "--max_event_age_days=0",
                               "--direct_num_workers=1", "--direct_running_mode=in_memory"])
    clock = START.timestamp()  # processing time for the dedup memory
    t = time.perf_counter()
    with beam.Pipeline(runner="FnApiRunner", options=options) as p:
        lines = p | "ReadMessages" >> beam.io.ReadFromText(source)
        decoded = lines | "Decode" >> beam.Map(lambda line: (lambda d: (d["d"].encode(), d["a"]))(orjson.loads(line)))
        build_pipeline(p, options.view_as(EcommerceOptions), Sinks(tables=NoTables()), messages=decoded,
                       clock=lambda: clock)
    elapsed = time.perf_counter() - t
    from pipeline.files import list_files

    files = [f for f in list_files(f"{tmp}/output") if "/_MANIFEST" not in f]
    rows = sum(open(f, "rb").read().count(b"\n") for f in files)
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return {"events": n, "seconds": round(elapsed, 2), "events_per_s": round(n / elapsed),
            "peak_rss_mb": round(peak_mb()), "files": len(files), "rows_in_files": rows}


def main(argv=None) -> int:
    argv = argv or sys.argv[1:]
    mode = argv[0]
    if mode == "generate":  # generate N PATH
        write_messages(generate(int(argv[1])), argv[2])
        return 0
    if mode == "graph":  # graph PATH
        print(json.dumps(graph(argv[1])))
        return 0
    messages = generate(int(argv[1]))
    print(json.dumps(reference(messages)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
