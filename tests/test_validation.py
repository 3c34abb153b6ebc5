"""parse_message: every way a message can be wrong has its own reason, and
the dead-letter row keeps what arrived."""

import base64
import hashlib
from datetime import timedelta

import orjson
import pytest

from pipeline.validation import Limits, Rejected, dead_letter_row, parse_message
from tests.helpers import BASE, BUILDERS, activity, inventory, message, order

NOW = BASE + timedelta(minutes=1)


def parse(data, attrs=None, publish=None, limits=Limits()):
    return parse_message(data, attrs, publish, now=NOW, limits=limits)


@pytest.mark.parametrize("event_type", sorted(BUILDERS))
def test_valid_events_parse_with_event_time_from_payload(event_type):
    # The event_time attribute never wins over the body.
    data, attrs, publish = message(BUILDERS[event_type](BASE + timedelta(seconds=5)),
                                   {"event_time": "1999-01-01T00:00:00Z"})
    event = parse(data, attrs, publish)
    assert event.event_type == event_type
    assert event.event_time == BASE + timedelta(seconds=5)
    assert not event.explicit_id


def _without(body: dict, key: str) -> dict:
    return {k: v for k, v in body.items() if k != key}


CASES = [
    ("invalid_json", b'{"event_type": "order", "order_id": "x"', {}),
    ("not_an_object", b"[1, 2]", {}),
    ("not_utf8", b"\xff\xfe{}", {}),
    ("missing_event_type", orjson.dumps(_without(order(BASE), "event_type")), {}),
    ("unknown_event_type", orjson.dumps(order(BASE, event_type="refund")), {}),
    ("unknown_event_type", orjson.dumps(order(BASE, event_type=7)), {}),
    ("event_type_mismatch", orjson.dumps(order(BASE)), {"event_type": "inventory"}),
    ("event_id_mismatch", orjson.dumps(order(BASE, event_id="a-1")), {"event_id": "a-2"}),
    ("missing_field", orjson.dumps(_without(order(BASE), "customer_id")), {}),
    ("missing_field", orjson.dumps(order(BASE, customer_id=None)), {}),
    ("schema_mismatch", orjson.dumps(order(BASE, total_amount="12")), {}),
    ("schema_mismatch", orjson.dumps(order(BASE, status="teleported")), {}),
    ("schema_mismatch", orjson.dumps(inventory(BASE, quantity_change=True)), {}),
    ("schema_mismatch", orjson.dumps(activity(BASE, metadata=["not", "a", "record"])), {}),
    ("constraint_violation", orjson.dumps(inventory(BASE, quantity_change=101)), {}),
    ("constraint_violation", orjson.dumps(inventory(BASE, inventory_id="")), {}),
    ("bad_timestamp", orjson.dumps(inventory(BASE, timestamp="yesterday")), {}),
    ("does_not_fit", orjson.dumps(order(BASE, total_amount=1e30)), {}),
    ("timestamp_out_of_range", orjson.dumps(inventory(BASE + timedelta(hours=2))), {}),
    ("timestamp_out_of_range", orjson.dumps(inventory(BASE - timedelta(days=40))), {}),
    ("invalid_event_id", orjson.dumps(inventory(BASE)), {"event_id": "../../etc/passwd"}),
    ("oversized", orjson.dumps(order(BASE, customer_id="x" * 300_000)), {}),
]


@pytest.mark.parametrize("error_type,data,attrs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_malformation_is_rejected_with_its_reason(error_type, data, attrs):
    with pytest.raises(Rejected) as info:
        parse(data, attrs)
    assert info.value.error_type == error_type
    assert info.value.error  # a human-readable reason


def test_backfill_limits_accept_old_events():
    data, attrs, _ = message(inventory(BASE - timedelta(days=400)))
    assert parse(data, attrs, limits=Limits(max_event_age=None)).event_time == BASE - timedelta(days=400)


def test_dead_letter_row_keeps_raw_payload_claims_and_hash():
    raw = b"\xff\xfenot utf8"
    with pytest.raises(Rejected) as info:
        parse(raw, {"event_type": "order", "event_id": "e-9"})
    row = dead_letter_row(info.value, raw, {"event_type": "order", "event_id": "e-9"}, BASE, NOW)
    assert base64.b64decode(row["payload_base64"]) == raw
    assert row["stage"] == "decode" and row["error_type"] == "not_utf8"
    assert orjson.loads(row["attributes"]) == {"event_type": "order", "event_id": "e-9"}
    assert row["event_id"] == "e-9" and row["payload_size"] == len(raw)
    assert row["payload_sha256"] == hashlib.sha256(raw).hexdigest()
    again = dead_letter_row(info.value, raw, {"event_id": "e-9", "event_type": "order"}, BASE, NOW)
    assert again["dead_letter_id"] == row["dead_letter_id"]  # a redelivery is the same dead letter


def test_dead_letter_row_of_a_brief_message_names_the_claimed_type():
    body = order(BASE, status="teleported")
    with pytest.raises(Rejected) as info:
        parse(orjson.dumps(body))
    row = dead_letter_row(info.value, orjson.dumps(body), None, None, NOW)
    assert row["event_type"] == "order" and row["attributes"] == "{}"
    assert "status" in row["error"] and row["payload"] == orjson.dumps(body).decode()
