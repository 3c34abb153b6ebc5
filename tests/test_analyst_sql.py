"""The analyst queries (sql/analytics/*.sql) on the BigQuery emulator, on a
dataset of known events written as the job writes them (the same row
builder), each answer checked number by number."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from common.clients import bigquery_client
from pipeline.alerts import Alert, alert_id
from pipeline.transforms import Accepted, table_row_maker
from pipeline.validation import Limits, parse_message
from provision import ensure_dataset, ensure_tables_api, ensure_views, substitute
from reconcile.checks import query
from schemas.contract import format_timestamp, to_micros
from tests.helpers import BASE, activity, order

pytestmark = pytest.mark.stack
SQL = Path(__file__).resolve().parent.parent / "sql" / "analytics"
DATASET = "analyst_sql"
A, B, C = "user-a", "user-b", "user-c"
START, END = BASE - timedelta(minutes=5), BASE + timedelta(hours=2)


def _t(minutes=0, seconds=0):
    return BASE + timedelta(minutes=minutes, seconds=seconds)


def _acc(body) -> Accepted:
    event = parse_message(orjson.dumps(body), None, None, now=BASE + timedelta(hours=3),
                          limits=Limits(max_event_age=None))
    return Accepted(event, event.event_time, event.event_time + timedelta(seconds=1))


def _click(user, at, kind="view_product", platform="web"):
    return _acc(activity(at, user_id=user, activity_type=kind,
                         metadata={"session_id": f"s-{user}", "platform": platform}))


def _order(order_id, customer, at, items, status="pending"):
    total = sum(q * p for _, q, p in items)
    return _acc(order(at, order_id=order_id, customer_id=customer, status=status, total_amount=total,
                      items=[{"product_id": pid, "product_name": f"name-{pid}", "quantity": q, "price": p}
                             for pid, q, p in items]))


@pytest.fixture(scope="module")
def analyst(stack):
    client = bigquery_client(stack.project)
    ensure_dataset(client, stack.project, DATASET, "US")
    ensure_tables_api(client, stack.project, DATASET)
    ensure_views(client, stack.project, DATASET)
    events = [
        # minute 0: A, B, C view (A twice), A and B add to cart; A and B order
        _click(A, _t(0, 0)), _click(A, _t(0, 10)), _click(A, _t(0, 20), "add_to_cart"),
        _click(B, _t(0, 5)), _click(B, _t(0, 15), "add_to_cart"),
        _click(C, _t(0, 30), platform="mobile"),
        _order("o-1", A, _t(0, 40), [("p1", 2, 9.5), ("p2", 1, 5.0)]),
        _order("o-1", A, _t(3, 0), [("p1", 2, 9.5), ("p2", 1, 5.0)], status="processing"),  # not a new order
        _order("o-2", B, _t(0, 50), [("p1", 1, 9.5)]),
        # minute 1: C views again (same session); A comes back 51 minutes later (a new session)
        _click(C, _t(1, 30), platform="mobile"),
        _click(A, _t(51, 0)),
    ]
    by_table: dict = {}
    for table, row, insert_id in map(table_row_maker("stream"), events):
        by_table.setdefault(table, []).append((row, insert_id))
    for table, rows in by_table.items():
        errors = client.insert_rows_json(f"{stack.project}.{DATASET}.{table}", [r for r, _ in rows],
                                         row_ids=[i for _, i in rows], retry=None)
        assert not errors, errors
    alerts = [Alert(alert_id(user, to_micros(m)), "user_burst", user, format_timestamp(m), 100, 101, "user_activity",
                    "x", format_timestamp(m), format_timestamp(m), format_timestamp(m + timedelta(seconds=1))).row()
              for user, m in ((A, _t(0)), (B, _t(1)), (B, _t(1)), (C, BASE - timedelta(hours=3)))]
    assert not client.insert_rows_json(f"{stack.project}.{DATASET}.alerts", alerts, retry=None)
    return lambda name: query(client, substitute((SQL / name).read_text(), stack.project, DATASET),
                              {"start": START, "end": END})


def test_funnel_per_minute(analyst):
    rows = analyst("funnel_per_minute.sql")
    got = [(r["minute"], r["viewers"], r["added_to_cart"], r["buyers"], r["orders"]) for r in rows]
    assert got == [(_t(0), 3, 2, 2, 2), (_t(1), 1, 0, 0, 0), (_t(51), 1, 0, 0, 0)]
    assert rows[0]["viewer_to_buyer"] == pytest.approx(2 / 3)


def test_top_products(analyst):
    rows = analyst("top_products.sql")
    assert [(r["product_id"], r["units"], Decimal(str(r["revenue"])), r["orders"]) for r in rows] == [
        ("p1", 3, Decimal("28.5"), 2), ("p2", 1, Decimal("5"), 1)]


def test_sessions_end_after_thirty_minutes_without_an_event(analyst):
    rows = {r["platform"]: r for r in analyst("session_statistics.sql")}
    assert rows["web"]["sessions"] == 3  # A twice (51 minutes apart), B once
    assert rows["web"]["sessions_with_cart"] == 2
    assert rows["web"]["avg_events"] == pytest.approx((3 + 1 + 2) / 3)
    assert rows["mobile"]["sessions"] == 1 and rows["mobile"]["avg_duration_s"] == pytest.approx(60)


def test_alerts_in_the_range_once_each(analyst):
    rows = analyst("alerts_last_hour.sql")
    assert [(r["user_id"], r["minute"]) for r in rows] == [(B, _t(1)), (A, _t(0))]
    assert all(r["detection_ms"] == 1000 for r in rows)


def test_every_query_in_the_folder_is_tested():
    tested = {"funnel_per_minute.sql", "top_products.sql", "session_statistics.sql", "alerts_last_hour.sql"}
    assert {p.name for p in SQL.glob("*.sql")} == tested
