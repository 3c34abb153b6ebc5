"""Small builders shared by the tests."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import orjson

from pipeline.validation import format_timestamp

BASE = datetime(2025, 2, 8, 13, 9, 0, tzinfo=timezone.utc)


def order(t: datetime, order_id: str = "ORD-1", status: str = "pending", **over) -> dict:
    payload = {
        "order_id": order_id, "customer_id": "C00001", "order_date": format_timestamp(t),
        "updated_at": format_timestamp(t), "status": status,
        "items": [{"product_id": "P0001", "product_name": "Eco Mug", "quantity": 2, "price": 9.5}],
        "shipping_address": {"street": "1 Main St", "city": "Berlin", "country": "DE"},
        "total_amount": 19.0,
    }
    payload.update(over)
    return payload


def inventory(t: datetime, **over) -> dict:
    payload = {"inventory_id": "INV-1", "product_id": "P0001", "warehouse_id": "WH-00", "quantity_change": -2,
               "reason": "sale", "timestamp": format_timestamp(t)}
    payload.update(over)
    return payload


def activity(t: datetime, **over) -> dict:
    payload = {"user_id": "C00001", "activity_type": "view_product", "ip_address": "10.1.2.3",
               "user_agent": "pytest", "timestamp": format_timestamp(t),
               "metadata": {"session_id": "S-1", "platform": "web", "product_id": "P0001"}}
    payload.update(copy.deepcopy(over))
    return payload


BUILDERS = {"order": order, "inventory": inventory, "user_activity": activity}


def message(event_type: str, payload, event_id: str | None = "e-1", **attrs) -> tuple[bytes, dict, datetime]:
    """(data, attributes, publish_time) as the parse step accepts them."""
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    attributes = {"event_type": event_type, **attrs}
    if event_id is not None:
        attributes["event_id"] = event_id
    return data, attributes, BASE + timedelta(seconds=1)
