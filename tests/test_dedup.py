"""The dedup memory (pipeline.transforms._DedupFn) called directly: how long
an identity is remembered (processing time, from first sight), duplicates,
conflicts, seeded identities, one append per new identity, and no timer at all."""

from __future__ import annotations

from datetime import timedelta

import orjson

from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms import userstate
from pipeline.transforms import Accepted, DeduplicateEvents, _DedupFn, _SkipStoredFn
from pipeline.validation import Limits, parse_message
from schemas.contract import identity_digest
from tests.helpers import BASE, activity, inventory

NOW = BASE + timedelta(minutes=1)


class FakeBag:
    """A bag state as the runner gives it: values go through the coder."""

    def __init__(self, coder):
        self.coder, self.values = coder, []

    def read(self):
        return [self.coder.decode(v) for v in self.values]

    def add(self, value):
        self.values.append(self.coder.encode(value))

    def clear(self):
        self.values = []


class Memory(FakeBag):
    """The dedup's state of one bucket."""

    def __init__(self):
        super().__init__(_DedupFn.MEMORY.coder)

    def entries(self) -> int:
        return len(self.values)


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def accepted(body):
    return Accepted(parse_message(orjson.dumps(body), None, None, now=NOW, limits=Limits()), None, NOW)


def run(fn, state, acc, new_bundle=True):
    """One element; by default in a bundle of its own, so the memory is read
    back from state each time (the harder path)."""
    if new_bundle:
        fn.start_bundle()
    digest = identity_digest(acc.event.event_type, acc.event.event_id)
    return list(fn.process((0, (digest, acc)), memory=state))


def test_memory_runs_from_first_sight_for_one_to_two_periods():
    clock = Clock()
    fn = _DedupFn(memory_s=600, clock=clock)
    state = Memory()
    event = accepted(inventory(BASE))
    assert run(fn, state, event) == [event]            # first sight
    clock.now += 599
    assert run(fn, state, event) == []                 # a duplicate
    clock.now += 601                                   # 1200 s after first sight: at the limit of 2 periods
    assert run(fn, state, accepted(inventory(BASE, inventory_id="other"))) != []  # rotates the bucket
    clock.now += 600
    assert run(fn, state, event) == [event]            # forgotten after at most two periods


def test_a_late_event_is_remembered_from_when_the_job_saw_it():
    """Event time plays no part: an event 5 minutes late is remembered as long
    as one on time."""
    clock = Clock()
    fn = _DedupFn(memory_s=600, clock=clock)
    state = Memory()
    late = accepted(activity(BASE - timedelta(minutes=5)))
    assert run(fn, state, late) == [late]
    clock.now += 120
    assert run(fn, state, late) == []


def test_a_different_content_under_the_same_identity_is_a_conflict():
    fn = _DedupFn(memory_s=600, clock=Clock())
    state = Memory()
    first = accepted(inventory(BASE))
    second = accepted(inventory(BASE, quantity_change=5))
    assert run(fn, state, first) == [first]
    (out,) = run(fn, state, second)
    assert isinstance(out, TaggedOutput) and out.tag == "conflicts"
    row = out.value
    assert row["event_id"] == first.event.event_id and row["stage"] == "dedup"
    assert (row["accepted_content_hash"], row["conflicting_content_hash"]) == (first.event.content_hash,
                                                                               second.event.content_hash)
    assert orjson.loads(row["payload"])["quantity_change"] == 5
    assert run(fn, state, first) == []  # the first stays the accepted one


def test_a_replay_skips_what_bigquery_already_holds():
    event = accepted(inventory(BASE))
    fn = _SkipStoredFn({identity_digest("inventory", event.event.event_id): event.event.content_hash})
    (stored,) = list(fn.process(event))
    assert stored.tag == "stored" and stored.value is event  # to its folder only, not to BigQuery again
    (out,) = list(fn.process(accepted(inventory(BASE, quantity_change=7))))
    assert out.tag == "conflicts" and out.value["stage"] == "replay"
    other = accepted(inventory(BASE, inventory_id="new-one"))
    assert list(fn.process(other)) == [other]


def test_the_type_is_part_of_the_identity_and_no_timer_is_kept():
    fn = _DedupFn(memory_s=600, clock=Clock())
    state = Memory()
    inv = accepted(inventory(BASE, inventory_id="shared-id"))
    order_like = accepted({**inventory(BASE), "event_type": "inventory", "inventory_id": "shared-id-2"})
    assert run(fn, state, inv) == [inv] and run(fn, state, order_like) == [order_like]
    assert identity_digest("order", "x") != identity_digest("inventory", "x")
    specs = userstate.get_dofn_specs(fn)
    assert specs[1] == set()  # no timers: nothing per event for the runner to scan
    assert DeduplicateEvents(600, buckets=8).buckets == 8


def test_within_a_bundle_the_memory_is_read_once_and_each_new_identity_is_one_append():
    clock = Clock()
    fn = _DedupFn(memory_s=600, clock=clock)
    state = Memory()
    events = [accepted(inventory(BASE, inventory_id=f"id-{i}")) for i in range(5)]
    fn.start_bundle()
    assert [out for e in events for out in run(fn, state, e, new_bundle=False)] == events
    assert [out for e in events for out in run(fn, state, e, new_bundle=False)] == []  # duplicates, same bundle
    assert state.entries() == 5
    assert [out for e in events for out in run(fn, state, e)] == []  # and in later bundles
    clock.now += 1200  # two periods later: forgotten, and the bag rewritten without them
    assert run(fn, state, events[0]) == [events[0]] and state.entries() == 1
