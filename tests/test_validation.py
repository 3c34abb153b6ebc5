"""parse_message: every way a message can be wrong has its own reason."""

from datetime import timedelta

import orjson
import pytest

from pipeline.validation import (Limits, Rejected, dead_letter_row, derived_event_id, parse_message,
                                 parse_timestamp)
from tests.helpers import BASE, BUILDERS, activity, inventory, message, order

NOW = BASE + timedelta(minutes=1)


def parse(data, attrs, publish=None, limits=Limits()):
    return parse_message(data, attrs, publish, now=NOW, limits=limits)


@pytest.mark.parametrize("event_type", sorted(BUILDERS))
def test_valid_events_parse_with_event_time_from_payload(event_type):
    data, attrs, publish = message(event_type, BUILDERS[event_type](BASE + timedelta(seconds=5)),
                                   event_time="1999-01-01T00:00:00Z")  # the attribute never wins
    event = parse(data, attrs, publish)
    assert event.event_type == event_type and event.event_id == "e-1"
    assert event.event_time == BASE + timedelta(seconds=5)
    assert not event.id_derived


CASES = [
    ("invalid_json", "order", b'{"order_id": "x"', {}),
    ("not_an_object", "order", b"[1, 2]", {}),
    ("not_utf8", "order", b"\xff\xfe{}", {}),
    ("missing_event_type", None, orjson.dumps(order(BASE)), {}),
    ("unknown_event_type", "refund", orjson.dumps(order(BASE)), {}),
    ("missing_field", "order", orjson.dumps({k: v for k, v in order(BASE).items() if k != "customer_id"}), {}),
    ("unknown_field", "order", orjson.dumps(order(BASE, coupon="X")), {}),
    ("schema_mismatch", "order", orjson.dumps(order(BASE, total_amount="12")), {}),
    ("schema_mismatch", "order", orjson.dumps(order(BASE, status="teleported")), {}),
    ("schema_mismatch", "inventory", orjson.dumps(inventory(BASE, quantity_change=True)), {}),
    ("constraint_violation", "inventory", orjson.dumps(inventory(BASE, quantity_change=101)), {}),
    ("constraint_violation", "inventory", orjson.dumps(inventory(BASE, timestamp="yesterday")), {}),
    ("constraint_violation", "user_activity", orjson.dumps(activity(BASE, ip_address="999.1.1.1")), {}),
    ("constraint_violation", "order", orjson.dumps(order(BASE, items=[{"product_id": "P", "product_name": "n",
                                                                         "quantity": 1, "price": 1.0}] * 201)), {}),
    ("timestamp_out_of_range", "inventory", orjson.dumps(inventory(BASE + timedelta(hours=2))), {}),
    ("timestamp_out_of_range", "inventory", orjson.dumps(inventory(BASE - timedelta(days=40))), {}),
    ("invalid_event_id", "inventory", orjson.dumps(inventory(BASE)), {"event_id": "../../etc/passwd"}),
    ("oversized", "order", orjson.dumps(order(BASE, customer_id="x" * 300_000)), {}),
]


@pytest.mark.parametrize("error_type,event_type,data,extra", CASES, ids=[c[0] for c in CASES])
def test_each_malformation_is_rejected_with_its_reason(error_type, event_type, data, extra):
    attrs = {"event_id": "e-1", **extra}
    if event_type is not None:
        attrs["event_type"] = event_type
    with pytest.raises(Rejected) as info:
        parse(data, attrs)
    assert info.value.error_type == error_type
    assert info.value.error  # a human-readable reason


def test_missing_event_id_gets_a_deterministic_id_from_content():
    payload = activity(BASE)
    a = parse(*message("user_activity", payload, event_id=None))
    b = parse(*message("user_activity", dict(reversed(list(payload.items()))), event_id=None))
    c = parse(*message("user_activity", activity(BASE, user_id="C2"), event_id=None))
    assert a.id_derived and a.event_id == b.event_id == derived_event_id("user_activity", payload)
    assert c.event_id != a.event_id


def test_backfill_limits_accept_old_events():
    data, attrs, _ = message("inventory", inventory(BASE - timedelta(days=400)))
    assert parse(data, attrs, limits=Limits(max_event_age=None)).event_time == BASE - timedelta(days=400)


def test_dead_letter_row_keeps_raw_payload_and_attributes():
    raw = b"\xff\xfenot utf8"
    with pytest.raises(Rejected) as info:
        parse(raw, {"event_type": "order", "event_id": "e-9"})
    row = dead_letter_row(info.value, raw, {"event_type": "order", "event_id": "e-9"}, BASE, NOW)
    import base64

    assert base64.b64decode(row["payload_base64"]) == raw
    assert row["stage"] == "decode" and row["error_type"] == "not_utf8"
    assert orjson.loads(row["attributes"]) == {"event_type": "order", "event_id": "e-9"}
    assert row["event_id"] == "e-9" and row["payload_size"] == len(raw)
    again = dead_letter_row(info.value, raw, {"event_id": "e-9", "event_type": "order"}, BASE, NOW)
    assert again["dead_letter_id"] == row["dead_letter_id"]  # a redelivery is the same dead letter


def test_timestamps_need_a_zone():
    assert parse_timestamp("2025-02-08T13:09:00+01:00") == BASE - timedelta(hours=1) + timedelta(minutes=0)
    with pytest.raises(ValueError):
        parse_timestamp("2025-02-08T13:09:00")
