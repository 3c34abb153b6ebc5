"""More than one executor thread for the BundleBasedDirectRunner (local runs only).

Beam 2.77's DirectRunner evaluates every bundle of every step on one thread
(`_ExecutorServiceParallelExecutor.NUM_WORKERS = 1` in
apache_beam/runners/direct/executor.py). Most of the job's local time is
spent waiting on the emulators' HTTP APIs, so once a minute, when the
watermark passes a minute's end and the file branch writes that minute's
files and manifests to the GCS emulator, the BigQuery inserts of the events
arriving meanwhile queue behind those writes (docs/performance.md, section 2).

`use_executor_threads(n)` sets the pool size before the pipeline runs. The
runner already keeps each stateful step serial (`should_execute_serially`),
so a step's state and timers are never touched by two threads at once; what
runs in parallel are different steps, or bundles of stateless steps, which
is what the runner was written for. Dataflow is not affected.
"""

from __future__ import annotations


def use_executor_threads(threads: int) -> None:
    from apache_beam.runners.direct.executor import _ExecutorServiceParallelExecutor

    _ExecutorServiceParallelExecutor.NUM_WORKERS = threads
