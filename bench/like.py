"""Like with like, on one core: the job's per-event work in plain Python, Beam's
floor for a graph of the job's shape, and the job's real graph.

* (a) `work`: what the job does per event, without Beam: parse and validate
  (`pipeline.validation.parse_message`), dedup by identity (a dict), the
  BigQuery row (`table_row_maker`), the minute folder (the lateness
  policy's window), the file line (`line_bytes`) and the alerts' count per
  (user, minute). The physical reference.
* (b) `floor`: a Beam graph of the job's shape with empty step bodies: the
  same stages, outputs, keys (identity buckets, minute folders), state and
  timers as the job, so what it costs is Beam's machinery alone.
* (c) `graph`: the job's own graph, built by the same `build_pipeline` the
  launchers use, with its BigQuery branch into an in-memory sink and its file
  branch into a local folder.
* `floor_off`, `graph_off`: (b) and (c) without the analytics steps
  (`--analytics=off`), to price them.
* `backfill`: the backfill's batch graph (`pipeline.backfill`) over the same
  messages written as history files: read, parse, exact dedup, rows, minute
  files; beside (c), the stream's graph.

(b) and (c) run on the FnApiRunner (the SDK harness Dataflow workers run),
one worker, fed from memory (no text source). Start-up is excluded: each is
run at two sizes and the cost per event is the marginal one,
(T(n2) - T(n1)) / (n2 - n1). Run one measurement per process:
`python -m bench.like graph 20000 100000` prints one JSON line.
"""

from __future__ import annotations

import gc
import json
import shutil
import sys
import tempfile
import time
import typing
from datetime import timedelta

from bench.core import START, generate

NOW = START + timedelta(days=1)
_SOURCE: list = []  # the messages of the run in progress, read by the in-memory source


def _read_source(_) -> typing.Iterable[typing.Any]:
    """The in-memory source: a module-level function, so that it is pickled
    by reference (a lambda would carry the whole message list into the
    pipeline's definition), with its output type declared (Beam would infer
    it by walking every message)."""
    return _SOURCE


def work(messages) -> float:
    """(a) Seconds for the job's per-event work over `messages`."""
    from pipeline.policy import LatenessPolicy
    from pipeline.transforms import Accepted, table_row_maker
    from pipeline.validation import Limits, Rejected, parse_message
    from schemas.contract import identity_digest, line_bytes, to_micros, user_of

    limits, policy, to_row = Limits(max_event_age=None), LatenessPolicy(), table_row_maker("stream")
    seen: dict = {}
    per_user: dict = {}
    t = time.perf_counter()
    for data, attrs in messages:
        try:
            event = parse_message(data, attrs, None, now=NOW, limits=limits)
        except Rejected:
            continue
        digest = identity_digest(event.event_type, event.event_id)
        if digest in seen:
            continue
        seen[digest] = event.content_hash
        to_row(Accepted(event, None, NOW))
        minute = policy.window_start_us(to_micros(event.event_time))
        line_bytes(event)
        user = user_of(event.event_type, event.payload)
        if user is not None:  # the anomaly alerts' count per (user, minute)
            per_user[(user, minute)] = per_user.get((user, minute), 0) + 1
    return time.perf_counter() - t


def _keys(messages):
    """Per message what the floor graph routes on: (identity bucket, minute
    folder key, event time), computed before the run so that (b) does no
    per-event work of the job's."""
    from pipeline.validation import Limits, Rejected, parse_message
    from schemas.contract import identity_digest, user_of

    out = []
    for data, attrs in messages:
        try:
            event = parse_message(data, attrs, None, now=NOW, limits=Limits(max_event_age=None))
        except Rejected:
            out.append((data, None, None, START.timestamp(), None))
            continue
        digest = identity_digest(event.event_type, event.event_id)
        minute = int(event.event_time.timestamp() // 60) * 60
        out.append((data, int.from_bytes(digest[:4], "big") % 16384, (event.event_type, minute, 0),
                    event.event_time.timestamp(), user_of(event.event_type, event.payload)))
    return out


def _options(extra=()):
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(["--direct_num_workers=1", "--direct_running_mode=in_memory", *extra])


def floor_pipeline(p, out_dir: str, analytics: bool = True) -> None:
    """(b) The job's shape with empty bodies (with or without the analytics steps)."""
    import apache_beam as beam
    from apache_beam.coders import FastPrimitivesCoder
    from apache_beam.transforms import userstate
    from apache_beam.transforms.window import GlobalWindows, TimestampedValue
    from apache_beam.utils.timestamp import Timestamp

    class Parse(beam.DoFn):
        def process(self, m):
            data, bucket, folder, ts, _ = m
            if bucket is None:
                yield beam.pvalue.TaggedOutput("dead", data)
            else:
                yield TimestampedValue(m, ts)

    class Dedup(beam.DoFn):  # the job's: a bag per identity bucket, read once per bundle, one append per new id
        MEMORY = userstate.BagStateSpec("memory", FastPrimitivesCoder())

        def start_bundle(self):
            self.known = {}

        def process(self, kv, memory=beam.DoFn.StateParam(MEMORY)):
            held = self.known.get(kv[0])
            if held is None:
                held = self.known[kv[0]] = set(memory.read())
            key = kv[1][0]
            if key not in held:
                held.add(key)
                memory.add(key)
                yield kv[1]

    class Files(beam.DoFn):
        PENDING = userstate.BagStateSpec("pending", FastPrimitivesCoder())
        META = userstate.ReadModifyWriteStateSpec("meta", FastPrimitivesCoder())
        ON_TIME = userstate.TimerSpec("on_time", userstate.TimeDomain.WATERMARK)

        def process(self, kv, pending=beam.DoFn.StateParam(PENDING), meta=beam.DoFn.StateParam(META),
                    on_time=beam.DoFn.TimerParam(ON_TIME)):
            if meta.read() is None:
                meta.write(1)
                on_time.set(Timestamp(kv[0][1] + 60))
            pending.add(kv[1][0])

        @userstate.on_timer(ON_TIME)
        def flush(self, key=beam.DoFn.KeyParam, pending=beam.DoFn.StateParam(PENDING)):
            lines = list(pending.read())
            pending.clear()
            yield (key, len(lines))

    class Bursts(beam.DoFn):  # the anomaly alerts: per-user counts, a timer per new key
        COUNTS = userstate.ReadModifyWriteStateSpec("counts", FastPrimitivesCoder())
        RELEASE = userstate.TimerSpec("release", userstate.TimeDomain.WATERMARK)

        def process(self, kv, counts=beam.DoFn.StateParam(COUNTS), release=beam.DoFn.TimerParam(RELEASE)):
            held = counts.read()
            if held is None:
                held = {}
                release.set(Timestamp(kv[1][2][1] + 240))
            minute = kv[1][2][1]
            held[minute] = held.get(minute, 0) + 1
            counts.write(held)

        @userstate.on_timer(RELEASE)
        def released(self, counts=beam.DoFn.StateParam(COUNTS)):
            counts.clear()

    class Insert(beam.DoFn):
        def start_bundle(self):
            self.buffer = []

        def process(self, row):
            self.buffer.append(row)

        def finish_bundle(self):
            self.buffer = []

    messages = p | "Impulse" >> beam.Impulse() | "Messages" >> beam.FlatMap(_read_source)
    parsed = messages | "ParseEvents" >> beam.ParDo(Parse()).with_outputs("dead", main="events")
    deduped = (parsed.events | "KeyByIdentityBucket" >> beam.Map(lambda m: (m[1], m))
               | "Dedup" >> beam.ParDo(Dedup()))
    files = (deduped | "InGlobalWindow" >> beam.WindowInto(GlobalWindows())
             | "KeyByMinuteFolder" >> beam.Map(lambda m: (m[2], m)) | "MinuteFiles" >> beam.ParDo(Files()))
    _ = deduped | "ToTableRows" >> beam.Map(lambda m: m) | "InsertRows" >> beam.ParDo(Insert())
    _ = files | "ToFileRows" >> beam.Map(lambda f: f) | "InsertFileRows" >> beam.ParDo(Insert())
    _ = parsed.dead | "ToDeadLetterRows" >> beam.Map(lambda d: d) | "InsertDeadLetters" >> beam.ParDo(Insert())
    if analytics:
        alerts = (deduped | "KeyByUser" >> beam.FlatMap(lambda m: [(m[4], m)] if m[4] else [])
                  | "CountPerUserMinute" >> beam.ParDo(Bursts()))
        _ = alerts | "ToAlertRows" >> beam.Map(lambda a: a) | "InsertAlerts" >> beam.ParDo(Insert())


class MemoryTables:
    """(c)'s table sink: rows are taken in batches and dropped, as a sink
    that costs nothing would (BigQuery's own cost is the end-to-end run's)."""

    def write(self, label, rows, dead_letter_table=False):
        import apache_beam as beam

        return rows | label >> beam.Filter(lambda _: False)


def graph_pipeline(p, out_dir: str, analytics: bool = True) -> None:
    """(c) The job's own graph (--analytics on or off)."""
    import apache_beam as beam

    from pipeline.graph import Sinks, build_pipeline
    from pipeline.options import EcommerceOptions

    opts = _options([f"--output_prefix={out_dir}", "--max_event_age_days=0", "--project=bench-project",
                     f"--analytics={'on' if analytics else 'off'}"]).view_as(EcommerceOptions)
    clock = START.timestamp()
    messages = p | "Impulse" >> beam.Impulse() | "Messages" >> beam.FlatMap(_read_source)
    build_pipeline(p, opts, Sinks(tables=MemoryTables()), messages=messages, clock=lambda: clock)


def backfill_pipeline(p, history_dir: str, out_dir: str) -> None:
    """The backfill's graph (pipeline/backfill.py, as python -m backfill
    builds it) over a history folder, tables into the in-memory sink, files
    to disk: the batch path beside the stream's (c)."""
    import os

    from pipeline.backfill import build_backfill
    from pipeline.graph import Sinks
    from pipeline.options import EcommerceOptions

    opts = _options([f"--output_prefix={out_dir}", "--project=bench-project"]).view_as(EcommerceOptions)
    build_backfill(p, opts, Sinks(tables=MemoryTables()), [os.path.join(history_dir, "**")])


def _history(messages, folder: str, per_file: int = 5000) -> None:
    """The messages as history files (newline-delimited JSON, 5,000 a file)."""
    import os

    os.makedirs(folder, exist_ok=True)
    for n in range(0, len(messages), per_file):
        with open(os.path.join(folder, f"part-{n // per_file:05d}.jsonl"), "wb") as fh:
            fh.write(b"".join(data + b"\n" for data, _ in messages[n:n + per_file] if b"\n" not in data))


def timed(kind: str, messages) -> float:
    """Seconds to run graph `kind` ('floor' or 'graph', '_off': without the
    analytics steps; 'backfill': the batch graph over the messages as history
    files) over `messages`."""
    import apache_beam as beam

    global _SOURCE
    if kind == "backfill":
        history, out_dir = tempfile.mkdtemp(prefix="bench-history-"), tempfile.mkdtemp(prefix="bench-backfill-")
        _history(messages, history)
        try:
            gc.collect()
            t = time.perf_counter()
            with beam.Pipeline(runner="FnApiRunner", options=_options()) as p:
                backfill_pipeline(p, history, out_dir)
            return time.perf_counter() - t
        finally:
            shutil.rmtree(history, ignore_errors=True)
            shutil.rmtree(out_dir, ignore_errors=True)
    shape, analytics = kind.removesuffix("_off"), not kind.endswith("_off")
    _SOURCE = _keys(messages) if shape == "floor" else list(messages)
    out_dir = tempfile.mkdtemp(prefix=f"bench-{kind}-")
    builder = floor_pipeline if shape == "floor" else graph_pipeline
    try:
        gc.collect()
        t = time.perf_counter()
        with beam.Pipeline(runner="FnApiRunner", options=_options()) as p:
            builder(p, out_dir, analytics)
        return time.perf_counter() - t
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def marginal(kind: str, small: int, large: int) -> dict:
    """Cost per event between two sizes (start-up cancels out)."""
    messages = generate(large)
    if kind == "work":
        t_small, t_large = work(messages[:small]), work(messages)
    else:
        t_small, t_large = timed(kind, messages[:small]), timed(kind, messages)
    us = (t_large - t_small) / (large - small) * 1e6
    return {"kind": kind, "small": small, "large": large, "seconds_small": round(t_small, 3),
            "seconds_large": round(t_large, 3), "us_per_event": round(us, 2), "events_per_s": round(1e6 / us)}


def main(argv=None) -> int:
    argv = argv or sys.argv[1:]
    kind, small, large = argv[0], int(argv[1]), int(argv[2])
    if kind != "work":
        from apache_beam.runners.portability.fn_api_runner import worker_handlers

        worker_handlers.STATE_CACHE_SIZE_MB = 0  # the state cache's objsize sizing is most of the cost otherwise
    print(json.dumps(marginal(kind, small, large)))
    return 0


if __name__ == "__main__":
    # Run the importable module, not this __main__ copy: functions of __main__
    # are pickled by value with their globals, which would carry the whole
    # message list into every step's definition (6x slower, measured).
    from bench.like import main as module_main

    sys.exit(module_main())
