"""Hostile input: whatever arrives, parse/validate either accepts a valid
event or rejects it with a reason, the dead-letter row can be written, and no
path or SQL is built from unvalidated input."""

from __future__ import annotations

from datetime import timedelta

import apache_beam as beam
import orjson
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.transforms import ParseEvents
from pipeline.validation import Event, Limits, Rejected, dead_letter_row, parse_message
from schemas import event_types
from tests.helpers import BASE, BUILDERS

NOW = BASE + timedelta(seconds=30)
LIMITS = Limits()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20)
attributes = st.dictionaries(st.text(max_size=30), st.text(max_size=60), max_size=5)
dangerous = st.sampled_from(["../../etc/passwd", "order/../../x", "order; DROP TABLE x", "`x`", "\x00", "a" * 5000,
                             "order\n", " order", "ORDER", "inventory%2F..", "${PROJECT}"])


def outcome(data, attrs):
    """parse_message must return an Event or raise Rejected, nothing else."""
    try:
        event = parse_message(data, attrs, BASE, now=NOW, limits=LIMITS)
    except Rejected as rejection:
        row = dead_letter_row(rejection, data, attrs, BASE, NOW)
        orjson.dumps(row)  # serialisable for the insert
        assert row["stage"] and row["error_type"] and row["error"]
        return rejection
    assert isinstance(event, Event) and event.event_type in event_types()
    return event


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2000), attrs=attributes)
def test_arbitrary_bytes_and_attributes(data, attrs):
    outcome(data, attrs)


@settings(max_examples=300, deadline=None)
@given(payload=json_values, event_type=st.sampled_from(sorted(event_types())), event_id=st.text(max_size=40))
def test_arbitrary_json_under_a_known_type(payload, event_type, event_id):
    outcome(orjson.dumps(payload), {"event_type": event_type, "event_id": event_id})


@settings(max_examples=300, deadline=None)
@given(event_type=st.sampled_from(sorted(event_types())), key=st.text(max_size=12), value=json_values)
def test_valid_events_with_one_field_replaced(event_type, key, value):
    payload = BUILDERS[event_type](BASE)
    fields = sorted(payload)
    target = fields[hash(key) % len(fields)] if key else key
    payload[target] = value
    result = outcome(orjson.dumps(payload), {"event_type": event_type, "event_id": "e-1"})
    if isinstance(result, Event):  # accepted only if the value still fits the schema
        assert result.payload[target] == value


@settings(max_examples=100, deadline=None)
@given(event_type=dangerous, event_id=dangerous)
def test_dangerous_attributes_are_rejected(event_type, event_id):
    result = outcome(orjson.dumps(BUILDERS["order"](BASE)), {"event_type": event_type, "event_id": event_id})
    assert isinstance(result, Rejected)


CORPUS = [
    (b"", {"event_type": "order"}),
    (b"null", {"event_type": "order"}),
    (b"{}", {"event_type": "inventory"}),
    (b'{"a":' * 10_000, {"event_type": "order"}),                                  # deep nesting
    (orjson.dumps(BUILDERS["order"](BASE, items=[BUILDERS["order"](BASE)["items"][0]] * 50_000)),
     {"event_type": "order"}),                                                      # huge array, oversized
    (orjson.dumps(BUILDERS["inventory"](BASE, timestamp="0001-01-01T00:00:00Z")), {"event_type": "inventory"}),
    (orjson.dumps(BUILDERS["inventory"](BASE, timestamp="9999-12-31T23:59:59Z")), {"event_type": "inventory"}),
    (orjson.dumps(BUILDERS["inventory"](BASE, timestamp="2025-02-30T00:00:00Z")), {"event_type": "inventory"}),
    (orjson.dumps(BUILDERS["inventory"](BASE, quantity_change=2**63)), {"event_type": "inventory"}),
    (b'{"quantity_change": 123456789012345678901234567890123}', {"event_type": "inventory"}),  # beyond 64 bits
    (b"\xed\xa0\x80", {"event_type": "user_activity"}),                             # lone surrogate, not UTF-8
    (orjson.dumps(BUILDERS["user_activity"](BASE, user_agent="x" * 10_000)), {"event_type": "user_activity"}),
    (orjson.dumps(BUILDERS["order"](BASE)), {"event_type": "order", "event_id": "id with spaces"}),
]


@pytest.mark.parametrize("data,attrs", CORPUS, ids=[f"corpus-{i}" for i in range(len(CORPUS))])
def test_corpus_is_rejected(data, attrs):
    assert isinstance(outcome(data, {**attrs, "event_id": attrs.get("event_id", "e-1")}), Rejected)


def test_the_parse_step_never_crashes_on_the_corpus():
    """The Beam step itself: every corpus message comes out as a dead letter."""
    with TestPipeline(runner="BundleBasedDirectRunner") as p:
        parsed = p | beam.Create([(d, {**a, "event_id": f"c-{i}"}) for i, (d, a) in enumerate(CORPUS)]) | ParseEvents()
        assert_that(parsed.dead_letter | beam.Map(lambda r: r["event_id"]),
                    equal_to([f"c-{i}" for i in range(len(CORPUS))]), label="AllDeadLettered")
        assert_that(parsed.events, equal_to([]), label="NoEvents")
