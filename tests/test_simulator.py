"""The simulator's world, faults and ledger (no Pub/Sub needed)."""

import random
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from pipeline.validation import Limits, Rejected, parse_message
from simulator.faults import MALFORMED_KINDS, FaultConfig, plan
from simulator.ledger import LedgerWriter, aggregate, read_lines
from simulator.runner import Simulator
from simulator.world import STATUSES, World

T0 = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)


def test_orders_walk_the_lifecycle_with_fixed_items_and_totals():
    world = World(seed=3, time_scale=0.1)
    seen: dict[str, list] = {}
    for i in range(400):
        event = world.next_event("order", T0 + timedelta(seconds=i))
        seen.setdefault(event.payload["order_id"], []).append(event.payload)
    complete = [events for events in seen.values() if len(events) == 4]
    assert complete, "some orders must reach delivered"
    for events in seen.values():
        assert [e["status"] for e in events] == STATUSES[:len(events)]
        assert len({str(e["items"]) for e in events}) == 1
        total = round(sum(i["quantity"] * i["price"] for i in events[0]["items"]), 2)
        assert all(e["total_amount"] == total for e in events)
        assert [e["updated_at"] for e in events] == sorted(e["updated_at"] for e in events)


def test_inventory_sales_follow_processed_orders():
    world = World(seed=5, time_scale=0.05)
    sold = Counter()
    for i in range(300):
        world.next_event("order", T0 + timedelta(seconds=i))
    expected = Counter()
    for product, _, qty in world.sales:
        expected[product] += qty
    while world.sales:
        e = world.next_event("inventory", T0).payload
        assert e["reason"] == "sale"
        sold[e["product_id"]] += -e["quantity_change"]
    assert sold == expected


def test_every_generated_event_is_valid():
    world = World(seed=1)
    for i in range(300):
        event = world.next_event(["order", "inventory", "user_activity"][i % 3], T0 + timedelta(seconds=i))
        p = plan(event, FaultConfig(late_fraction=0, duplicate_fraction=0, malformed_fraction=0, no_id_fraction=0),
                 random.Random(i))
        parsed = parse_message(p.messages[0].data, p.messages[0].attributes, now=T0 + timedelta(seconds=i),
                               limits=Limits())
        assert parsed.event_id == event.event_id


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_each_malformed_kind_is_rejected_by_the_pipeline(kind, monkeypatch):
    world = World(seed=2)
    monkeypatch.setattr("simulator.faults.random.Random.choice",
                        lambda self, seq: kind if seq is MALFORMED_KINDS else seq[0])
    for event_type in ("order", "inventory", "user_activity"):
        p = plan(world.next_event(event_type, T0), FaultConfig(malformed_fraction=1.0), random.Random(0))
        assert p.malformed and p.malformed_kind == kind
        with pytest.raises(Rejected):
            parse_message(p.messages[0].data, p.messages[0].attributes, now=T0, limits=Limits())


def test_fault_fractions_and_delays():
    world, rng = World(seed=9), random.Random(9)
    cfg = FaultConfig(too_late_fraction=0.02)
    plans = [plan(world.next_event("inventory", T0), cfg, rng) for _ in range(5000)]
    late = [p for p in plans if p.intended_delay_s > 0 and not p.too_late]
    assert 0.08 < len(late) / len(plans) < 0.12
    assert all(30 <= p.intended_delay_s <= 60 for p in late)
    too_late = [p for p in plans if p.too_late]
    assert too_late and all(p.messages[0].delay_s == 0 for p in too_late)
    assert all(p.event_time < "2026-01-01T11:55" for p in too_late)  # back-dated past the lateness
    dups = [p for p in plans if len(p.messages) == 2]
    assert 0.02 < len(dups) / len(plans) < 0.04
    assert all(d.messages[0].attributes == d.messages[1].attributes for d in dups)


class _Future:
    def __init__(self, fail=False):
        self.fail = fail

    def add_done_callback(self, cb):
        cb(self)

    def result(self):
        if self.fail:
            raise RuntimeError("publish failed")
        return "1"


class _Publisher:
    def __init__(self):
        self.sent = []

    def publish(self, topic, data, **attrs):
        self.sent.append((data, attrs))
        return _Future(fail=attrs.get("event_type") == "never")


def test_stop_request_publishes_everything_held_back_and_ledger_matches(tmp_path):
    pub = _Publisher()
    ledger = LedgerWriter(tmp_path / "l.jsonl")
    sim = Simulator(pub, "t", ledger, "run1", rate=200, seed=4,
                    faults=FaultConfig(late_fraction=0.5, duplicate_fraction=0.2))
    sim.stop_requested.set()  # as Ctrl-C: generate what is due, flush the rest now
    stats = sim.run(count=50)
    ledger.close()
    lines = read_lines(tmp_path / "l.jsonl")
    rows = aggregate(lines)
    assert stats.published == len(pub.sent) == len(lines)
    assert sum(r["copies"] for r in rows) == len(pub.sent)
    assert len(rows) == stats.generated and stats.pending == 0


class _FlakyPublisher(_Publisher):
    """Fails the first attempt of every third message, as during an outage."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def publish(self, topic, data, **attrs):
        self.calls += 1
        if self.calls % 3 == 0:
            return _Future(fail=True)
        self.sent.append((data, attrs))
        return _Future()


def test_failed_publishes_are_retried_and_only_successes_are_in_the_ledger(tmp_path):
    pub = _FlakyPublisher()
    ledger = LedgerWriter(tmp_path / "l.jsonl")
    sim = Simulator(pub, "t", ledger, "run2", rate=500, seed=8, faults=FaultConfig(late_fraction=0))
    sim.retry_base_s = 0.001
    stats = sim.run(count=60)
    ledger.close()
    rows = aggregate(read_lines(tmp_path / "l.jsonl"))
    assert stats.failed == 0 and pub.calls > len(pub.sent)
    assert len(rows) == 60 and sum(r["copies"] for r in rows) == len(pub.sent)
