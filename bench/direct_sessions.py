"""What the sessions step costs on the local runner as sessions grow.

    python -m bench.direct_sessions            # 100, 200 and 400 bundles; about a minute

Beam's DirectRunner keeps merging windows (Sessions) through
`MergeableStateAdapter`, which keeps one window id per event merged into a
session and walks them, with a copy of the key's state, whenever the key is
touched: a session's cost per event grows with the events it already holds.
The steady bench's 300 customers are each active for the whole run (one
session per user that never closes): its worst case. This feeds the job's
session step (`pipeline.sessions`: Sessions windows, the job's CombineFn) with
bundles of 200 events over 300 users, one bundle per second of event time,
and prints the time per bundle against a graph that only maps the same input.
Dataflow runs merging windows in its own worker and is not measured here.
"""

from __future__ import annotations

import sys
import time


def _run(bundles: int, sessions: bool, users: int = 300, per_bundle: int = 200) -> float:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    from apache_beam.testing.test_stream import TestStream
    from apache_beam.transforms import trigger, window
    from apache_beam.utils.timestamp import Duration

    from pipeline.sessions import _SessionCombine

    t0, stream, i = 1_700_000_000, TestStream(), 0
    for b in range(bundles):
        batch = []
        for j in range(per_bundle):
            t = t0 + b + j / per_bundle
            batch.append(window.TimestampedValue((f"user-{(i * 7919) % users}", (int(t * 1e6), "view_product", "web")),
                                                 t))
            i += 1
        stream = stream.advance_watermark_to(t0 + b).add_elements(batch)
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    p = beam.Pipeline(runner="BundleBasedDirectRunner", options=options)
    events = p | stream
    if sessions:
        _ = (events
             | beam.WindowInto(window.Sessions(1800), trigger=trigger.DefaultTrigger(),
                               accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
                               allowed_lateness=Duration(seconds=180))
             | beam.CombinePerKey(_SessionCombine()) | beam.Map(lambda _: None))
    else:
        _ = events | beam.Map(lambda _: None)
    started = time.perf_counter()
    p.run().wait_until_finish()
    return time.perf_counter() - started


def main() -> int:
    from localrun.dofn_specs import cache_dofn_specs

    cache_dofn_specs()  # as the local job runs
    sizes = [100, 200, 400]
    print("bundles of 200 events over 300 users, one per second of event time (BundleBasedDirectRunner)")
    base = _run(sizes[-1], sessions=False) / sizes[-1]
    print(f"  map only: {base * 1000:.1f} ms per bundle")
    previous = (0, 0.0)
    for n in sizes:
        total = _run(n, sessions=True)
        step = (total - previous[1]) / (n - previous[0])
        print(f"  sessions, {n} bundles: {total:.1f} s; bundles {previous[0] + 1}-{n}: {step * 1000:.0f} ms per "
              f"bundle ({(step - base) * 1000:.0f} ms more than the map)")
        previous = (n, total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
