"""Hostile input: whatever arrives, the parser either accepts a valid event
whose row fits the warehouse, or rejects it with a reason; the dead-letter row
can be written; no path or SQL is built from unvalidated input.

The properties draw valid event types (in the body, as the brief's producer
sends them) so that they reach deep validation, and run more than 10,000
examples in all. Hypothesis replays a failing example from its database and
prints it; nothing here depends on Python's randomised hash().
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import apache_beam as beam
import orjson
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.transforms import ParseEvents
from pipeline.validation import Limits, Rejected, dead_letter_row, parse_message
from schemas import event_types
from schemas.contract import (INT64_MAX, INT64_MIN, NUMERIC_LIMIT, Canonical, bigquery_row, line_bytes, read_line,
                              stored_content_hash)
from tests.helpers import BASE, BUILDERS

NOW = BASE + timedelta(seconds=30)
LIMITS = Limits(max_event_age=None)
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
json_scalars = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 64 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
attributes = st.dictionaries(st.sampled_from(["event_type", "event_id", "event_time", "x"]) | st.text(max_size=10),
                             st.text(max_size=40), max_size=4)
_DANGEROUS = ["../../etc/passwd", "order/../../x", "order; DROP TABLE x", "`x`", "\x00", "a" * 5000, "order\n",
              " order", "inventory%2F..", "${PROJECT}", "id with spaces", "é"]
dangerous_types = st.sampled_from(_DANGEROUS + ["ORDER", "Order", "user-activity"])
dangerous_ids = st.sampled_from(_DANGEROUS)
valid_types = st.sampled_from(sorted(event_types()))


def dumps(value) -> bytes:
    """JSON as a producer might send it: the standard library's encoder also
    writes integers beyond 64 bits, which orjson refuses."""
    return json.dumps(value, ensure_ascii=False).encode()


def _check_fits(value):
    """Every value of an accepted row is something BigQuery takes."""
    if isinstance(value, dict):
        for v in value.values():
            _check_fits(v)
    elif isinstance(value, list):
        for v in value:
            _check_fits(v)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        assert INT64_MIN <= value <= INT64_MAX
    elif isinstance(value, float):
        raise AssertionError(f"a float reached a row: {value!r}")  # money must be NUMERIC text


def outcome(data, attrs):
    """parse_message must return a Canonical event or raise Rejected."""
    try:
        event = parse_message(data, attrs, BASE, now=NOW, limits=LIMITS)
    except Rejected as rejection:
        row = dead_letter_row(rejection, data, attrs, BASE, NOW)
        orjson.dumps(row)  # serialisable for the insert
        assert row["stage"] and row["error_type"] and row["error"] and row["payload_sha256"]
        return rejection
    assert isinstance(event, Canonical) and event.event_type in event_types()
    row = bigquery_row(event, BASE, NOW, "stream")
    orjson.dumps(row)
    _check_fits(event.payload)
    for name, value in event.payload.items():
        if isinstance(value, str) and name in ("price", "total_amount"):
            assert abs(Decimal(value)) < NUMERIC_LIMIT
    assert stored_content_hash(event.event_type, read_line(line_bytes(event))) == event.content_hash
    return event


@settings(max_examples=2500, **SETTINGS)
@given(data=st.binary(max_size=2000), attrs=attributes)
def test_arbitrary_bytes_and_attributes(data, attrs):
    outcome(data, attrs)


@settings(max_examples=2500, **SETTINGS)
@given(payload=st.dictionaries(st.text(max_size=12), json_values, max_size=8), event_type=valid_types)
def test_arbitrary_json_under_a_known_type(payload, event_type):
    outcome(dumps({**payload, "event_type": event_type}), None)


def _fields(event_type):
    return sorted(k for k in BUILDERS[event_type](BASE) if k != "event_type")


@settings(max_examples=3000, **SETTINGS)
@given(data=st.data(), event_type=valid_types, value=json_values)
def test_valid_events_with_one_field_replaced(data, event_type, value):
    body = BUILDERS[event_type](BASE)
    target = data.draw(st.sampled_from(_fields(event_type)))
    body[target] = value
    outcome(dumps(body), None)


@settings(max_examples=2000, **SETTINGS)
@given(data=st.data(), event_type=valid_types, value=json_scalars)
def test_valid_events_with_one_nested_value_replaced(data, event_type, value):
    body = BUILDERS[event_type](BASE)
    nested = {"order": ("items", 0), "inventory": None, "user_activity": ("metadata",)}[event_type]
    target = body
    for step in nested or ():
        target = target[step]
    key = data.draw(st.sampled_from(sorted(target)))
    target[key] = value
    outcome(dumps(body), None)


@settings(max_examples=300, **SETTINGS)
@given(event_type=dangerous_types, event_id=dangerous_ids)
def test_dangerous_type_and_id_are_rejected(event_type, event_id):
    body = BUILDERS["order"](BASE)
    assert isinstance(outcome(orjson.dumps({**body, "event_type": event_type}), None), Rejected)
    assert isinstance(outcome(orjson.dumps({**body, "event_id": event_id}), None), Rejected)


CORPUS = [
    (b"", {}),
    (b"null", {}),
    (b"{}", {}),
    (b'{"event_type": "inventory"}', {}),
    (b'{"a":' * 10_000, {}),                                                          # deep nesting
    (orjson.dumps(BUILDERS["order"](BASE, items=[BUILDERS["order"](BASE)["items"][0]] * 50_000)), {}),  # oversized
    (orjson.dumps(BUILDERS["inventory"](BASE, timestamp="2025-02-30T00:00:00Z")), {}),
    (orjson.dumps(BUILDERS["inventory"](BASE, timestamp="10000-01-01T00:00:00Z")), {}),
    (orjson.dumps(BUILDERS["inventory"](BASE)).replace(b'"quantity_change":-2', b'"quantity_change":1e400'), {}),
    (orjson.dumps(BUILDERS["inventory"](BASE)).replace(b'"quantity_change":-2',
                                                        b'"quantity_change":123456789012345678901234567890123'), {}),
    (b'{"event_type": "user_activity", "user_id": "\\ud800"}', {}),                  # lone surrogate
    (b"\xed\xa0\x80", {"event_type": "user_activity"}),                              # not UTF-8
    (orjson.dumps(BUILDERS["order"](BASE, total_amount=1e29)), {}),                  # beyond NUMERIC
    (orjson.dumps(BUILDERS["order"](BASE)), {"event_id": "id with spaces"}),
]


@pytest.mark.parametrize("data,attrs", CORPUS, ids=[f"corpus-{i}" for i in range(len(CORPUS))])
def test_corpus_is_rejected(data, attrs):
    assert isinstance(outcome(data, attrs), Rejected)


def test_the_parse_step_never_crashes_on_the_corpus():
    """The Beam step itself: every corpus message comes out as a dead letter."""
    with TestPipeline(runner="BundleBasedDirectRunner") as p:
        parsed = p | beam.Create([(d, {**a, "x-corpus": str(i)}) for i, (d, a) in enumerate(CORPUS)]) | ParseEvents(
            LIMITS)
        assert_that(parsed.dead_letter | beam.Map(lambda r: orjson.loads(r["attributes"])["x-corpus"]),
                    equal_to([str(i) for i in range(len(CORPUS))]), label="AllDeadLettered")
        assert_that(parsed.events, equal_to([]), label="NoEvents")
