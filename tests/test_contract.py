"""The message contract (schemas/contract.py) against the brief's own text and
values at the edges of every type."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest

from pipeline.validation import Limits, Rejected, parse_message
from schemas import event_specs
from schemas.contract import (ContractError, bigquery_row, canonicalize, content_hash, file_line, file_path,
                              fit_numeric, format_timestamp, identity_digest, insert_id, line_bytes, manifest_path,
                              parse_file_path, parse_timestamp, read_line, stored_content_hash)
from tests import brief_events
from tests.brief_events import BASE

NOW = BASE + timedelta(minutes=2)
NO_AGE_LIMIT = Limits(max_event_age=None)


def parse(body, attributes=None, now=NOW):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse_message(data, attributes, None, now=now, limits=NO_AGE_LIMIT)


def _schema_tree(fields) -> dict:
    """Field names of an Avro record as a nested dict, without extensions."""
    tree = {}
    for f in fields:
        if f.get("extension"):
            continue
        t = f["type"]
        t = next(x for x in t if x != "null") if isinstance(t, list) else t
        if isinstance(t, dict) and t["type"] == "array":
            t = t["items"]
        tree[f["name"]] = _schema_tree(t["fields"]) if isinstance(t, dict) and t["type"] == "record" else {}
    return tree


@pytest.mark.parametrize("event_type", sorted(event_specs()))
def test_each_schema_has_exactly_the_briefs_fields(event_type):
    brief = brief_events.field_tree(brief_events.templates()[event_type])
    brief.pop("event_type")  # the discriminator, not a payload field
    assert _schema_tree(event_specs()[event_type].payload_fields) == brief


def test_every_event_built_from_the_brief_is_accepted_without_attributes():
    """900 events made from seed 004's text with edge values (floats with
    many decimals, 64-bit integers, unicode and empty strings, every RFC 3339
    spelling), published as the brief says: body only."""
    examples = brief_events.examples(300)
    for body in examples:
        event = parse(body, attributes=None)
        assert event.event_type == body["event_type"]
        assert event.extra is None and not event.unknown_fields
        # What the sinks get fits the columns and keeps the content.
        line, row = line_bytes(event), bigquery_row(event, None, NOW, "stream")
        assert stored_content_hash(event.event_type, read_line(line)) == event.content_hash
        assert stored_content_hash(event.event_type, orjson.loads(orjson.dumps(row))) == event.content_hash
        assert line.endswith(b"\n") and b"\n" not in line[:-1]  # one NDJSON line


def test_brief_events_identity_time_and_money():
    rng = random.Random(1)
    order = brief_events.event("order", rng)
    order["items"] = [{"product_id": "p", "product_name": "Mug", "quantity": 3, "price": 0.1 + 0.2}]
    order["total_amount"] = 0.30000000000000004 * 3
    order["order_date"] = "2025-02-08T13:09:07.5+01:00"
    event = parse(order)
    assert event.event_id == f"{order['order_id']}:{order['status']}"
    assert event.event_time == datetime(2025, 2, 8, 12, 9, 7, 500000, tzinfo=timezone.utc)  # order_date, in UTC
    assert event.payload["items"][0]["price"] == "0.300000000"
    assert event.payload["total_amount"] == "0.900000000"
    assert read_line(line_bytes(event))["items"][0]["price"] == Decimal("0.3")
    assert b'"price":0.3}' in line_bytes(event)

    inventory = brief_events.event("inventory", rng)
    assert parse(inventory).event_id == inventory["inventory_id"]

    activity = brief_events.event("user_activity", rng)
    first = parse(activity)
    assert first.event_id == f"sha256:{first.content_hash}"
    # The same activity serialised differently is the same event; another one is not.
    reordered = dict(reversed(list(activity.items())))
    assert parse(reordered).event_id == first.event_id
    assert parse(dict(activity, user_agent=activity["user_agent"] + "!")).event_id != first.event_id


def test_updated_at_extension_is_the_event_time_when_present():
    body = brief_events.event("order", random.Random(2))
    body["order_date"] = "2025-02-08T13:00:00Z"
    assert parse(body).event_time == datetime(2025, 2, 8, 13, 0, tzinfo=timezone.utc)
    body["updated_at"] = "2025-02-08T13:09:30Z"
    assert parse(body).event_time == datetime(2025, 2, 8, 13, 9, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("text,expected", [
    ("2025-02-08T13:09:00Z", datetime(2025, 2, 8, 13, 9, tzinfo=timezone.utc)),
    ("2025-02-08t13:09:00z", datetime(2025, 2, 8, 13, 9, tzinfo=timezone.utc)),
    ("2025-02-08 13:09:00Z", datetime(2025, 2, 8, 13, 9, tzinfo=timezone.utc)),
    ("2025-02-08T13:09:00", datetime(2025, 2, 8, 13, 9, tzinfo=timezone.utc)),          # no zone: UTC
    ("2025-02-08T14:09:00+01:00", datetime(2025, 2, 8, 13, 9, tzinfo=timezone.utc)),
    ("2025-02-08T08:39:00-04:30", datetime(2025, 2, 8, 13, 9, tzinfo=timezone.utc)),
    ("2025-02-08T13:09:00.123456789Z", datetime(2025, 2, 8, 13, 9, 0, 123456, tzinfo=timezone.utc)),
    ("2025-02-08T13:09:00.5Z", datetime(2025, 2, 8, 13, 9, 0, 500000, tzinfo=timezone.utc)),
    ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)),  # leap second
    ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=timezone.utc)),
])
def test_timestamps_rfc3339_as_it_allows(text, expected):
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize("text", ["2025-02-08", "2025-02-30T00:00:00Z", "31/02/2025 25:61", "20250208T130900Z",
                                  "2025-02-08T13:09Z", "2025-02-08T25:00:00Z", "2025-02-08T13:09:00+24:00",
                                  "", "yesterday", "2025-02-08T13:09:00ZZ", "１２３４-01-01T00:00:00Z",
                                  "2025-02-08T13:09:00Z\n"])
def test_timestamps_that_are_not_rfc3339_are_refused(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)


@pytest.mark.parametrize("value,text", [
    (0.1 + 0.2, "0.300000000"), (19.99, "19.990000000"), (1e-10, "0.000000000"), (2.5e-9, "0.000000002"),
    (3.5e-9, "0.000000004"), (-0.0, "0.000000000"), (123456.78901234567, "123456.789012346"),
    (5, "5.000000000"), (Decimal("1.0000000005"), "1.000000000"), (1e20, "100000000000000000000.000000000"),
])
def test_money_is_rounded_half_even_to_numerics_nine_decimals(value, text):
    assert fit_numeric(value) == text


@pytest.mark.parametrize("value", [1e29, -1e30, float("inf"), float("nan"), 1e308])
def test_money_beyond_numeric_is_refused_by_the_contract(value):
    with pytest.raises(ContractError) as info:
        fit_numeric(value)
    assert info.value.error_type == "does_not_fit"


def test_integers_fit_int64_or_are_refused_with_a_reason():
    body = brief_events.event("order", random.Random(3))
    body["items"] = [{"product_id": "p", "product_name": "n", "quantity": 2 ** 63 - 1, "price": 1.0}]
    assert parse(body).payload["items"][0]["quantity"] == 2 ** 63 - 1
    body["items"][0]["quantity"] = 5.0  # integral float from a producer whose numbers are all floats
    assert parse(body).payload["items"][0]["quantity"] == 5
    body["items"][0]["quantity"] = 12345
    raw = orjson.dumps(body).replace(b'"quantity":12345', b'"quantity":18446744073709551615')
    with pytest.raises(Rejected) as info:
        parse(raw)
    assert info.value.error_type == "does_not_fit" and "INT64" in info.value.error
    body["items"][0]["quantity"] = 2.5
    with pytest.raises(Rejected) as info:
        parse(body)
    assert info.value.error_type == "schema_mismatch"


def test_attributes_are_optional_hints():
    body = brief_events.event("inventory", random.Random(4))
    payload_only = {k: v for k, v in body.items() if k != "event_type"}
    assert parse(payload_only, {"event_type": "inventory"}).event_type == "inventory"  # type as attribute only
    with pytest.raises(Rejected) as info:
        parse(body, {"event_type": "order"})
    assert info.value.error_type == "event_type_mismatch"
    assert parse(body, {"event_type": "inventory", "event_id": "evt-1"}).event_id == "evt-1"  # explicit id wins
    assert parse(dict(body, event_id="evt-2")).event_id == "evt-2"
    with pytest.raises(Rejected) as info:
        parse(dict(body, event_id="evt-2"), {"event_id": "evt-3"})
    assert info.value.error_type == "event_id_mismatch"
    with pytest.raises(Rejected) as info:
        parse(payload_only)
    assert info.value.error_type == "missing_event_type"


def test_unknown_fields_are_kept_in_extra_at_their_place():
    body = brief_events.event("order", random.Random(5))
    body["items"] = [{"product_id": "p", "product_name": "n", "quantity": 1, "price": 2.0, "color": "red"},
                     {"product_id": "q", "product_name": "m", "quantity": 1, "price": 3.0}]
    body["coupon_code"] = "SPRING25"
    body["shipping_address"] = dict(body["shipping_address"], zip="10115")
    event = parse(body)
    assert event.extra == {"items": [{"color": "red"}, {}], "coupon_code": "SPRING25",
                           "shipping_address": {"zip": "10115"}}
    assert sorted(event.unknown_fields) == ["coupon_code", "items[].color", "shipping_address.zip"]
    assert read_line(line_bytes(event))["extra"] == event.extra
    assert orjson.loads(bigquery_row(event, None, NOW, "stream")["extra"]) == event.extra
    # The extra fields are content: without them it is another content hash.
    without = parse({k: v for k, v in body.items() if k != "coupon_code"})
    assert without.content_hash != event.content_hash and without.event_id == event.event_id


def test_identity_digest_includes_the_type():
    assert identity_digest("order", "x") != identity_digest("inventory", "x")
    assert len(insert_id("order", "é" * 1000)) == 32  # bounded whatever the identity holds


def test_content_hash_ignores_serialisation_not_values():
    a = canonicalize("inventory", {"inventory_id": "i", "product_id": "p", "warehouse_id": "w", "quantity_change": 1,
                                   "reason": "sale", "timestamp": "2025-02-08T14:09:00+01:00"})
    b = canonicalize("inventory", {"timestamp": "2025-02-08T13:09:00.000Z", "reason": "sale", "quantity_change": 1.0,
                                   "warehouse_id": "w", "product_id": "p", "inventory_id": "i"})
    assert a.content_hash == b.content_hash
    assert content_hash("inventory", a.payload, None) != content_hash("inventory", {**a.payload, "quantity_change": 2},
                                                                      None)


def test_file_layout_and_its_parser():
    minute = datetime(2025, 2, 8, 13, 9, tzinfo=timezone.utc)
    path = file_path("gs://b/output", "order", minute, 1)
    assert path == "gs://b/output/order/2025/02/08/13/09/order_2025020813090001.json"  # the brief's own example
    assert parse_file_path(path) == type(parse_file_path(path))("order", minute, 1)
    assert parse_file_path(file_path("o", "user_activity", minute, 9999)).seq == 9999
    with pytest.raises(ValueError):
        file_path("o", "order", minute, 10000)
    with pytest.raises(ValueError):
        file_path("o", "../etc", minute, 1)
    for bad in ["o/order/2025/02/08/13/09/order_2025020813100001.json",   # name disagrees with folder
                "o/order/2025/02/08/13/09/order_202502081309001.json",    # three digits
                "o/order/2025/02/08/13/09/order_2025020813090000.json",   # sequence 0
                "o/refund/2025/02/08/13/09/refund_2025020813090001.json",
                "o/_too_late/order/2025/02/08/13/09/order_202502081309_ab12.json"]:
        assert parse_file_path(bad) is None, bad
    assert manifest_path("o", "order", minute, 0, 1).endswith("/order/2025/02/08/13/09/_MANIFEST.json")
    assert manifest_path("o", "order", minute, 3, 4).endswith("/_MANIFEST-03.json")
    assert format_timestamp(minute) == "2025-02-08T13:09:00.000000Z"


def test_years_before_1000_keep_four_digits():
    body = brief_events.event("inventory", random.Random(6))
    body["timestamp"] = "0999-01-02T03:04:05Z"
    event = parse(body)
    assert event.event_time == datetime(999, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert file_line(event)["event_time"] == "0999-01-02T03:04:05.000000Z"


def test_numbers_in_unknown_fields_round_trip_through_the_files():
    body = brief_events.event("order", random.Random(7))
    body.update(discount=0.1, weights=[1.5, 2, 1e-7], nested={"ratio": 1 / 3})
    event = parse(body)
    assert stored_content_hash("order", read_line(line_bytes(event))) == event.content_hash
