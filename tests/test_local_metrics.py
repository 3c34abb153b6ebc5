"""The local runner's counters count every bundle (localrun/bundle_metrics.py),
and the Beam behaviour that makes the fix necessary is still there (when
this second test fails, Beam counts correctly and the fix can go)."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.direct.executor import TransformExecutor
from apache_beam.testing.test_stream import TestStream

from localrun import bundle_metrics

BUNDLES, PER_BUNDLE = 5, 40


class CountRead(beam.DoFn):
    def __init__(self):
        self.read = Metrics.counter("events", "read")

    def process(self, element):
        self.read.inc()
        yield element


def counted() -> int:
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    p = beam.Pipeline(runner="BundleBasedDirectRunner", options=options)
    stream = TestStream()
    for _ in range(BUNDLES):
        stream = stream.add_elements(list(range(PER_BUNDLE))).advance_processing_time(1)
    _ = p | stream.advance_watermark_to_infinity() | beam.ParDo(CountRead())
    result = p.run()
    result.wait_until_finish()
    return sum(c.committed for c in result.metrics().query()["counters"])


def test_every_bundle_is_counted(monkeypatch):
    monkeypatch.setattr(TransformExecutor, "call", TransformExecutor.call)  # undone after the test
    monkeypatch.setattr(bundle_metrics, "_original", {})
    bundle_metrics.count_every_bundle()
    assert counted() == BUNDLES * PER_BUNDLE


def test_without_the_fix_beam_still_loses_later_bundles():
    assert TransformExecutor.call.__module__ == "apache_beam.runners.direct.executor"  # Beam's own, unpatched
    assert counted() < BUNDLES * PER_BUNDLE
