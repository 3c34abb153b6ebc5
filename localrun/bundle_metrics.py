"""Counters that count every bundle on the BundleBasedDirectRunner (local runs only).

Beam 2.77's DirectRunner gives each bundle a new MetricsContainer, but the
executor thread's StateSampler caches the ScopedState of each (step, state)
with the container of the first bundle it saw
(apache_beam/runners/worker/statesampler.py `scoped_state`). Every later
bundle's increments go to that first container, which was committed long
ago: a streaming job that read 308 messages reported `events.read: 5`.

`count_every_bundle()` drops the thread's cached scoped states before each
bundle, so each bundle's scoped states carry its own container. Only the
state sampler's timing bookkeeping is rebuilt; nothing in the data path
changes. Dataflow has its own metrics and is not affected. Remove this when
tests/test_local_metrics.py finds Beam counting correctly without it.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_original = {}


def count_every_bundle() -> None:
    from apache_beam.runners.direct.executor import TransformExecutor

    with _lock:
        if "call" in _original:
            return
        _original["call"] = original = TransformExecutor.call

        def call(self, state_sampler):
            state_sampler._states_by_name.clear()  # scoped states bound to this bundle's container
            return original(self, state_sampler)

        TransformExecutor.call = call
