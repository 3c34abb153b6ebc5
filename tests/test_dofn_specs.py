"""The local runner remembers each DoFn class's state and timer specs
(localrun/dofn_specs.py): the same answers as Beam's own introspection, asked
of Beam once per class however many bundles run, and the Beam behaviour that
makes it worth doing is still there (when the last test fails, the
DirectRunner no longer introspects per bundle and the cache can go)."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.coders import VarIntCoder
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.direct import transform_evaluator
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import userstate
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimeDomain, TimerSpec

from localrun import dofn_specs

BUNDLES, KEYS = 6, 4


class CountPerKey(beam.DoFn):
    TOTAL = ReadModifyWriteStateSpec("total", VarIntCoder())
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)

    def process(self, element, total=beam.DoFn.StateParam(TOTAL), flush=beam.DoFn.TimerParam(FLUSH)):
        key, _ = element
        total.write((total.read() or 0) + 1)
        flush.set(10**6)
        yield key, total.read()

    @userstate.on_timer(FLUSH)
    def flushed(self, total=beam.DoFn.StateParam(TOTAL)):
        total.clear()


@pytest.fixture
def calls(monkeypatch):
    """Beam's get_dofn_specs, counted ("n", "classes"), and the cache's own
    introspection of a class's methods ("plans": one class each time); the
    cache installed on top; all undone after the test."""
    counted = {"n": 0, "classes": set(), "plans": []}
    beams_own = userstate.get_dofn_specs
    specs = dofn_specs._specs

    def counting_specs(dofn, names):
        if len(names) > 3:  # a whole class's methods, not just the hooked process/start/finish
            counted["plans"].append(type(dofn))
        return specs(dofn, names)

    monkeypatch.setattr(dofn_specs, "_specs", counting_specs)

    def counting(dofn):
        counted["n"] += 1
        counted["classes"].add(type(dofn))
        return beams_own(dofn)

    monkeypatch.setattr(userstate, "get_dofn_specs", counting)
    monkeypatch.setattr(transform_evaluator, "get_dofn_specs", counting)
    monkeypatch.setattr(dofn_specs, "_original", {})
    return counted


def run_counts() -> None:
    """Each key's running count, kept in state across the bundles."""
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    stream = TestStream()
    for b in range(BUNDLES):
        stream = stream.add_elements([(f"k{k}", b) for k in range(KEYS)]).advance_processing_time(1)
    with beam.Pipeline(runner="BundleBasedDirectRunner", options=options) as p:
        totals = p | stream.advance_watermark_to_infinity() | beam.ParDo(CountPerKey())
        assert_that(totals, equal_to([(f"k{k}", n) for k in range(KEYS) for n in range(1, BUNDLES + 1)]))


def test_a_stateful_job_gives_the_same_results_and_asks_beam_once_per_class(calls):
    dofn_specs.cache_dofn_specs()
    run_counts()
    # The stateful ParDo alone ran a bundle per key and batch of input (24
    # here); each DoFn class's methods were introspected once.
    assert CountPerKey in calls["plans"]
    assert len(calls["plans"]) == len(set(calls["plans"])), calls["plans"]


def test_the_answers_are_beams_for_every_dofn_of_the_job(calls):
    from pipeline.graph import build_pipeline
    from pipeline.options import EcommerceOptions
    from tests.helpers import graph_sinks

    opts = EcommerceOptions(["--project=p", "--subscription=projects/p/subscriptions/s", "--output_prefix=/tmp/out"])
    p = TestPipeline()
    build_pipeline(p, opts, graph_sinks(), messages=p | beam.Create([]))
    dofns = []

    class Visit(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            if isinstance(node.transform, beam.ParDo):
                dofns.append(node.transform.dofn)

    p.visit(Visit())
    assert len(dofns) > 10
    beams_own = {id(d): dofn_specs._original.get("get_dofn_specs", userstate.get_dofn_specs)(d) for d in dofns}
    dofn_specs.cache_dofn_specs()
    stateful = 0
    for dofn in dofns:
        cached = userstate.get_dofn_specs(dofn)
        assert cached == beams_own[id(dofn)], type(dofn)
        again = userstate.get_dofn_specs(beam.internal.pickler.roundtrip(dofn))  # a new instance, as per bundle
        assert again == cached
        stateful += bool(cached[0] or cached[1])
    assert stateful >= 4  # dedup, minute files, alerts, metrics
    assert userstate.is_stateful_dofn(CountPerKey()) and not userstate.is_stateful_dofn(beam.DoFn())


def test_a_dofn_with_a_method_among_its_attributes_is_asked_afresh(calls):
    class Plain(beam.DoFn):
        def process(self, element):
            yield element

    dofn_specs.cache_dofn_specs()
    odd = Plain()
    odd.extra = CountPerKey().process  # a bound method of a stateful DoFn, seen by dir(odd)
    for _ in range(3):
        userstate.get_dofn_specs(odd)
    assert calls["n"] == 3
    userstate.get_dofn_specs(Plain())
    userstate.get_dofn_specs(Plain())
    assert calls["n"] == 3 and calls["plans"].count(Plain) == 1


def test_errors_are_not_remembered(calls):
    class Repeats(beam.DoFn):
        def process(self, element, a=beam.DoFn.StateParam(CountPerKey.TOTAL),
                    b=beam.DoFn.StateParam(CountPerKey.TOTAL)):
            yield element

    dofn_specs.cache_dofn_specs()
    for _ in range(2):
        with pytest.raises(ValueError, match="duplicate"):
            userstate.get_dofn_specs(Repeats())
    assert calls["plans"].count(Repeats) == 2


def test_wrapped_dofns_answer_for_what_they_wrap(calls):
    """beam.Map's wrapper takes process()'s parameters from its function, and
    --runtime_type_check wraps every DoFn in wrappers that forward attribute
    lookups: neither may get the answer of another instance of its class."""
    from apache_beam.transforms.core import CallableWrapperDoFn
    from apache_beam.typehints.decorators import IOTypeHints
    from apache_beam.typehints.typecheck import OutputCheckWrapperDoFn, TypeCheckWrapperDoFn

    def keeps_state(element, total=beam.DoFn.StateParam(CountPerKey.TOTAL)):
        yield element

    plain_map, state_map = CallableWrapperDoFn(lambda x: x), CallableWrapperDoFn(keeps_state)
    plain_wrapped = OutputCheckWrapperDoFn(TypeCheckWrapperDoFn(beam.DoFn(), IOTypeHints.empty()), "plain")
    stateful_wrapped = OutputCheckWrapperDoFn(TypeCheckWrapperDoFn(CountPerKey(), IOTypeHints.empty()), "stateful")
    beams = [userstate.get_dofn_specs(d) for d in (plain_map, state_map, plain_wrapped, stateful_wrapped)]
    assert beams[3] == ({CountPerKey.TOTAL}, {CountPerKey.FLUSH}) and beams[2] == (set(), set())
    dofn_specs.cache_dofn_specs()
    for _ in range(2):  # the first of each class fills the cache, the second must not take its answer
        assert [userstate.get_dofn_specs(d) for d in (plain_map, state_map, plain_wrapped, stateful_wrapped)] == beams
    assert userstate.is_stateful_dofn(stateful_wrapped) and not userstate.is_stateful_dofn(plain_wrapped)


def test_uncache_puts_beams_function_back(calls):
    counting = userstate.get_dofn_specs
    dofn_specs.cache_dofn_specs()
    assert userstate.get_dofn_specs is not counting and transform_evaluator.get_dofn_specs is not counting
    dofn_specs.uncache_dofn_specs()
    assert userstate.get_dofn_specs is counting and transform_evaluator.get_dofn_specs is counting


def test_without_the_cache_beam_still_asks_for_every_bundle(calls):
    run_counts()
    assert calls["n"] >= BUNDLES * KEYS, calls["n"]
