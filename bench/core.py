"""Generated events for the benchmarks, and the peak memory of the job's graph.

* `generate`: messages as the simulator publishes them, with its duplicates
  and malformed messages, written to a file;
* `graph`: the job's own graph over such a file on the FnApiRunner, one
  worker, for its peak memory at a given volume (the per-event costs are
  bench/like.py's).

Run one size per process (`python -m bench.core graph PATH`) so peak memory
(ru_maxrss) belongs to that size alone.
"""

from __future__ import annotations

import json
import random
import resource
import sys
import tempfile
import time
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


def write_messages(messages, path: str) -> None:
    with open(path, "wb") as fh:
        for data, attrs in messages:
            fh.write(orjson.dumps({"d": data.decode("utf-8", "replace"), "a": attrs}) + b"\n")


def graph(source: str) -> dict:
    """The core graph over a file of messages written by `write_messages`
    (generated in another process, so peak RSS here is the pipeline's)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from bench.like import MemoryTables
    from pipeline.graph import Sinks, build_pipeline
    from pipeline.options import EcommerceOptions

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
        build_pipeline(p, options.view_as(EcommerceOptions), Sinks(tables=MemoryTables()), messages=decoded,
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
    raise SystemExit(f"unknown mode {mode!r}: generate N PATH | graph PATH")


if __name__ == "__main__":
    sys.exit(main())
