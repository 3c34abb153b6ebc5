"""Small builders shared by the tests: events in the brief's format (the
JSON body alone, event_type inside)."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import orjson

from schemas.contract import format_timestamp

BASE = datetime(2025, 2, 8, 13, 9, 0, tzinfo=timezone.utc)


def order(t: datetime, order_id: str = "0b7c1c52-8f0e-4e1a-9a53-6f2d4c1e0001", status: str = "pending",
          **over) -> dict:
    body = {
        "event_type": "order", "order_id": order_id, "customer_id": "c0ffee00-0000-4000-8000-000000000001",
        "order_date": format_timestamp(t), "status": status,
        "items": [{"product_id": "p0000000-0000-4000-8000-000000000001", "product_name": "Eco Mug", "quantity": 2,
                   "price": 9.5}],
        "shipping_address": {"street": "1 Main St", "city": "Berlin", "country": "DE"},
        "total_amount": 19.0,
        "updated_at": format_timestamp(t),
    }
    body.update(over)
    return body


def inventory(t: datetime, inventory_id: str = "1a2b3c4d-0000-4000-8000-000000000001", **over) -> dict:
    body = {"event_type": "inventory", "inventory_id": inventory_id,
            "product_id": "p0000000-0000-4000-8000-000000000001",
            "warehouse_id": "w0000000-0000-4000-8000-000000000001", "quantity_change": -2, "reason": "sale",
            "timestamp": format_timestamp(t)}
    body.update(over)
    return body


def activity(t: datetime, **over) -> dict:
    body = {"event_type": "user_activity", "user_id": "c0ffee00-0000-4000-8000-000000000001",
            "activity_type": "view_product", "ip_address": "10.1.2.3", "user_agent": "pytest",
            "timestamp": format_timestamp(t),
            "metadata": {"session_id": "5e55e55e-0000-4000-8000-000000000001", "platform": "web"}}
    body.update(copy.deepcopy(over))
    return body


BUILDERS = {"order": order, "inventory": inventory, "user_activity": activity}


def message(body, attributes: dict | None = None, publish_time: datetime | None = None):
    """(data, attributes, publish_time) as the parse step accepts them."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return data, dict(attributes or {}), publish_time or BASE + timedelta(seconds=1)


class TableRows:
    """The job's table sink for graph tests: keeps each write's rows (for
    assert_that) and refuses none. BigQuery's own behaviour is tested in
    tests/test_bigquery_sink.py and against the emulator."""

    def __init__(self):
        self.written = {}

    def write(self, label, rows, dead_letter_table=False):
        import apache_beam as beam

        self.written[label] = rows
        return rows | f"{label}RefusesNothing" >> beam.Filter(lambda _: False)


def graph_sinks(tables: "TableRows | None" = None):
    from pipeline.graph import Sinks

    return Sinks(tables=tables or TableRows())


def streaming_pipeline():
    """A TestPipeline on the BundleBasedDirectRunner in streaming mode (TestStream needs it)."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    from apache_beam.testing.test_pipeline import TestPipeline

    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    return TestPipeline(runner="BundleBasedDirectRunner", options=options)


def accepted_at(body, now: datetime, publish_time: datetime | None = None):
    """An Accepted event parsed from `body`, stamped with its event time (a TimestampedValue)."""
    from apache_beam.transforms.window import TimestampedValue

    from pipeline.transforms import Accepted
    from pipeline.validation import Limits, parse_message

    event = parse_message(orjson.dumps(body), None, None, now=now, limits=Limits(max_event_age=None))
    return TimestampedValue(Accepted(event, publish_time, now if publish_time is None else publish_time),
                            event.event_time.timestamp())
