"""What the views make of changes, on the BigQuery emulator: a correction
supersedes, an invalidation hides the event, a deletion hides every event
of its entity (an order's every status), the raw tables keep every version,
and the current-state views follow."""

from __future__ import annotations

from datetime import timedelta

import pytest

from common.clients import bigquery_client
from pipeline.validation import Limits, parse_message
from provision import ensure_dataset, ensure_tables_api, ensure_views
from reconcile.checks import query
from schemas import event_specs
from schemas.contract import bigquery_row, insert_id
from tests.helpers import BASE, activity, inventory, order

pytestmark = pytest.mark.stack
DATASET = "changes_views"
T = lambda s: BASE + timedelta(seconds=s)  # noqa: E731


def _row(body: dict, ingest_s: float = 100):
    import orjson

    event = parse_message(orjson.dumps(body), None, None, now=T(3600), limits=Limits(max_event_age=None))
    return event, bigquery_row(event, T(ingest_s - 1), T(ingest_s), "stream")


def _change(body, kind, at_s, **over):
    return {**body, "change_type": kind, "changed_at": f"2025-02-08T13:{9 + at_s // 60:02d}:{at_s % 60:02d}Z", **over}


@pytest.fixture(scope="module")
def views(stack):
    client = bigquery_client(stack.project)
    ensure_dataset(client, stack.project, DATASET, "US")
    ensure_tables_api(client, stack.project, DATASET)
    ensure_views(client, stack.project, DATASET)
    a, b, c = (inventory(T(1), inventory_id=f"inv-{n}", quantity_change=q) for n, q in (("a", 5), ("b", 7), ("c", 9)))
    o_pending = order(T(2), order_id="0b7c1c52-8f0e-4e1a-9a53-00000000000a", status="pending")
    o_shipped = order(T(3), order_id="0b7c1c52-8f0e-4e1a-9a53-00000000000a", status="shipped")
    o_other = order(T(4), order_id="0b7c1c52-8f0e-4e1a-9a53-00000000000b", status="pending")
    action = activity(T(5))
    action_id = _row(action)[0].event_id
    bodies = [
        a, _change(a, "correction", 20, quantity_change=6), _change(a, "correction", 30, quantity_change=4),
        b, _change(b, "invalidation", 20, change_reason="test stock"),
        c, _change(c, "invalidation", 20), _change(c, "correction", 40, quantity_change=8),  # valid again
        o_pending, o_shipped, o_other, _change(o_pending, "deletion", 50),               # the whole order
        action, _change(action, "deletion", 25, event_id=action_id),
    ]
    rows = {}
    for n, body in enumerate(bodies):
        event, row = _row(body, 100 + n)
        rows.setdefault(event_specs()[event.event_type].name, []).append((row, insert_id(event.event_type,
                                                                                          event.version_id)))
    rows["inventory_events"].append(rows["inventory_events"][0])  # a raw duplicate the insertId missed
    for table, items in rows.items():
        assert not client.insert_rows_json(f"{stack.project}.{DATASET}.{table}", [r for r, _ in items], retry=None)
    return client


def _q(views, stack, sql):
    return query(views, sql.replace("D.", f"`{stack.project}.{DATASET}`."))


def test_the_latest_version_wins_and_invalid_or_deleted_events_are_hidden(views, stack):
    inv = {r["inventory_id"]: r["quantity_change"] for r in _q(views, stack, "SELECT * FROM D.inventory_events_dedup")}
    assert inv == {"inv-a": 4, "inv-c": 8}  # a: its last correction; b: invalidated; c: corrected after it
    assert _q(views, stack, "SELECT COUNT(*) AS n FROM D.inventory_events")[0]["n"] == 9  # every version kept
    orders = _q(views, stack, "SELECT order_id, status FROM D.order_events_dedup")
    assert orders == [{"order_id": "0b7c1c52-8f0e-4e1a-9a53-00000000000b", "status": "pending"}]  # a's every status
    assert _q(views, stack, "SELECT COUNT(*) AS n FROM D.user_activity_events_dedup")[0]["n"] == 0
    stock = {r["product_id"]: r["stock"] for r in _q(views, stack, "SELECT * FROM D.inventory_stock")}
    assert list(stock.values()) == [12]  # 4 + 8: the current views follow
    current = _q(views, stack, "SELECT order_id FROM D.orders_current")
    assert [r["order_id"] for r in current] == ["0b7c1c52-8f0e-4e1a-9a53-00000000000b"]


def test_a_change_row_says_what_changed_and_why(views, stack):
    rows = _q(views, stack, "SELECT change_type, change_reason FROM D.inventory_events WHERE inventory_id = 'inv-b' "
                            "AND change_type IS NOT NULL")
    assert rows == [{"change_type": "invalidation", "change_reason": "test stock"}]
