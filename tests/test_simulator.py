"""The simulator's world, faults and ledger (no Pub/Sub needed)."""

import random
from collections import Counter
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from pipeline.validation import Limits, Rejected, parse_message
from simulator.faults import EXTRA_FIELDS, MALFORMED_KINDS, FaultConfig, plan
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
        total = sum(i["quantity"] * i["price"] for i in events[0]["items"])  # a float sum, as producers send
        assert all(e["total_amount"] == total for e in events)
        assert [e["updated_at"] for e in events] == sorted(e["updated_at"] for e in events)


def test_ids_are_uuids_and_new_in_every_run_whatever_the_seed():
    import uuid

    a, b = World(seed=7), World(seed=7)
    ea, eb = a.next_event("inventory", T0).payload, b.next_event("inventory", T0).payload
    assert ea["inventory_id"] != eb["inventory_id"]
    assert ea["product_id"] == eb["product_id"]  # the catalogue comes from the seed
    for value in (ea["inventory_id"], ea["product_id"], ea["warehouse_id"]):
        uuid.UUID(value)


def test_strict_brief_publishes_only_the_briefs_fields():
    world = World(seed=1, strict_brief=True)
    for i in range(50):
        e = world.next_event("order", T0 + timedelta(seconds=i)).payload
        assert "updated_at" not in e
    assert "product_id" not in world.next_event("user_activity", T0).payload["metadata"]


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


@pytest.mark.parametrize("attributes", [False, True])
def test_every_generated_event_is_valid_and_the_ledger_knows_its_identity(attributes):
    """The brief's format (body only) by default, with the optional hints
    when asked; the ledger's event_id and content hash are the pipeline's."""
    world = World(seed=1)
    cfg = FaultConfig(late_fraction=0, duplicate_fraction=0, malformed_fraction=0, conflict_fraction=0,
                      extra_field_fraction=0.2, attributes=attributes)
    for i in range(300):
        event = world.next_event(["order", "inventory", "user_activity"][i % 3], T0 + timedelta(seconds=i))
        (p,) = plan(event, cfg, random.Random(i), explicit_id=world.new_event_id())
        message = p.messages[0]
        assert orjson.loads(message.data)["event_type"] == event.event_type
        assert bool(message.attributes) == attributes
        parsed = parse_message(message.data, message.attributes, now=T0 + timedelta(seconds=i), limits=Limits())
        assert (parsed.event_id, parsed.content_hash) == (p.event_id, p.content_hash)
        assert [path.replace("[]", "") for path in parsed.unknown_fields] == p.extra_fields


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
@pytest.mark.parametrize("attributes", [False, True])
def test_each_malformed_kind_is_rejected_by_the_pipeline(kind, attributes, monkeypatch):
    import hashlib

    world = World(seed=2)
    monkeypatch.setattr("simulator.faults.random.Random.choice",
                        lambda self, seq: kind if seq is MALFORMED_KINDS else seq[0])
    for event_type in ("order", "inventory", "user_activity"):
        (p,) = plan(world.next_event(event_type, T0), FaultConfig(malformed_fraction=1.0, attributes=attributes),
                    random.Random(0))
        assert p.malformed and p.malformed_kind == kind
        assert p.payload_sha256 == hashlib.sha256(p.messages[0].data).hexdigest()  # how the ledger finds it
        with pytest.raises(Rejected):
            parse_message(p.messages[0].data, p.messages[0].attributes, now=T0, limits=Limits())


def test_conflicts_share_the_identity_and_follow_the_original():
    world, rng = World(seed=3), random.Random(3)
    cfg = FaultConfig(conflict_fraction=1.0, late_fraction=0, malformed_fraction=0, extra_field_fraction=0)
    pairs = [plan(world.next_event("inventory", T0), cfg, rng) for _ in range(20)]
    for original, conflict in pairs:
        assert conflict.conflict and not original.conflict
        assert conflict.event_id == original.event_id and conflict.content_hash != original.content_hash
        assert conflict.messages[0].delay_s >= original.messages[-1].delay_s - 30 and conflict.messages[0].delay_s >= 3
    # User activity has no id of its own: a changed copy is another event, never a conflict.
    assert all(len(plan(world.next_event("user_activity", T0), cfg, rng)) == 1 for _ in range(20))


def test_extra_fields_are_fields_the_schema_does_not_know():
    from schemas import event_specs

    for event_type, extras in EXTRA_FIELDS.items():
        known = {f["name"] for f in event_specs()[event_type].payload_fields}
        assert all(path.split(".")[0] not in known or "." in path for path, _ in extras)


def test_fault_fractions_and_delays():
    world, rng = World(seed=9), random.Random(9)
    cfg = FaultConfig(far_late_fraction=0.02, conflict_fraction=0)
    plans = [plan(world.next_event("inventory", T0), cfg, rng)[0] for _ in range(5000)]
    late = [p for p in plans if p.intended_delay_s > 0 and not p.far_late]
    assert 0.08 < len(late) / len(plans) < 0.12
    assert all(30 <= p.intended_delay_s <= 60 for p in late)
    far_late = [p for p in plans if p.far_late]
    assert far_late and all(p.messages[0].delay_s == 0 for p in far_late)
    assert all(p.event_time < "2026-01-01T11:55" for p in far_late)  # back-dated past the lateness
    dups = [p for p in plans if len(p.messages) == 2]
    assert 0.02 < len(dups) / len(plans) < 0.04
    assert all(d.messages[0].data == d.messages[1].data for d in dups)


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
                    faults=FaultConfig(late_fraction=0.5, duplicate_fraction=0.2, conflict_fraction=0))
    stats = sim.run(count=50, progress=lambda s: s.generated >= 50 and sim.stop_requested.set())
    ledger.close()
    lines = read_lines(tmp_path / "l.jsonl")
    rows = aggregate(lines)
    assert stats.generated == 50  # the stop came after 50 events were generated, ~half of them held back
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
    sim = Simulator(pub, "t", ledger, "run2", rate=500, seed=8,
                    faults=FaultConfig(late_fraction=0, conflict_fraction=0.05, duplicate_max_gap_s=1))
    sim.retry_base_s = 0.001
    stats = sim.run(count=60)
    ledger.close()
    rows = aggregate(read_lines(tmp_path / "l.jsonl"))
    assert stats.failed == 0 and pub.calls > len(pub.sent)
    assert len(rows) == 60 + stats.conflicts and sum(r["copies"] for r in rows) == len(pub.sent)
    # Each failed attempt is kept (Pub/Sub may have published it anyway), before the copy that succeeded.
    retried = [r for r in rows if r["failed_attempt_times"]]
    assert sum(len(r["failed_attempt_times"]) for r in rows) == pub.calls - len(pub.sent)
    assert retried and all(r["failed_attempt_times"][0] <= r["publish_times"][-1] for r in retried)
    assert all(len(r["confirmed_times"]) == r["copies"] and r["confirmed_times"][-1] >= r["publish_times"][-1]
               for r in rows)


def test_bot_bursts_are_distinct_events_of_one_user_in_one_minute_and_the_ledger_knows(tmp_path):
    pub = _Publisher()
    ledger = LedgerWriter(tmp_path / "l.jsonl")
    faults = FaultConfig(late_fraction=0, duplicate_fraction=0, conflict_fraction=0, malformed_fraction=0,
                         extra_field_fraction=0, bot_bursts_per_minute=600, bot_burst_size=7)
    stats = Simulator(pub, "t", ledger, "run1", rate=100, seed=3, faults=faults).run(count=100)
    ledger.close()
    rows = aggregate(read_lines(tmp_path / "l.jsonl"))
    bots = [r for r in rows if r["bot"]]
    assert stats.bot_bursts > 0 and len(bots) == stats.bot_bursts * 7
    now = datetime.now(timezone.utc)
    by_burst = Counter()
    for data, _ in pub.sent:
        body = orjson.loads(data)
        if body.get("user_agent") == "python-requests/2.32":
            event = parse_message(data, None, None, now=now, limits=Limits(max_event_age=None))  # valid, as is
            by_burst[(event.payload["user_id"], event.event_time.replace(second=0, microsecond=0))] += 1
    assert sum(by_burst.values()) == len(bots) and len({r["event_id"] for r in bots}) == len(bots)
    # Every user's event carries its user in the ledger; inventory has none.
    assert all(r["user_id"] for r in rows if r["event_type"] != "inventory")
    assert not any(r["user_id"] for r in rows if r["event_type"] == "inventory")


def test_bot_fault_options_are_checked():
    with pytest.raises(ValueError, match="bot-burst-size"):
        FaultConfig(bot_burst_size=0).validate()


def test_changes_follow_their_event_and_parse_as_its_versions():
    """The simulator's corrections, invalidations and deletions (seed 002):
    sent after the event, naming it (a user action by its id), each a version
    the job will compute exactly as the ledger says."""
    cfg = FaultConfig(late_fraction=0, duplicate_fraction=0, conflict_fraction=0, malformed_fraction=0,
                      extra_field_fraction=0, correction_fraction=0.3, invalidation_fraction=0.3,
                      deletion_fraction=0.3)
    world, rng = World(seed=2), random.Random(2)
    now = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    kinds = Counter()
    for i in range(300):
        plans = plan(world.next_event(["order", "inventory", "user_activity"][i % 3], now), cfg, rng)
        original, *changes = plans
        assert original.change_type is None and len(changes) <= 1
        for p in changes:
            kinds[(p.event_type, p.change_type)] += 1
            event = parse_message(p.messages[0].data, None, None, now=now + timedelta(minutes=1),
                                  limits=Limits(max_event_age=None))
            assert event.event_id == original.event_id == p.event_id and event.change.kind == p.change_type
            assert event.version_id != original.event_id and event.content_hash == p.content_hash
            assert p.messages[0].delay_s > original.messages[0].delay_s and p.entity == original.entity
            assert (p.content_hash != original.content_hash) == (p.change_type == "correction")
    assert {k for _, k in kinds} == {"correction", "invalidation", "deletion"}
    assert {t for t, _ in kinds} == {"order", "inventory", "user_activity"}
