"""The daily warehouse (sql/warehouse/, python -m warehouse) on the BigQuery
emulator, from a known input of two days: customer profiles as SCD type 2
after an address change (hand-computed), a re-run that changes nothing, the
daily tables equal to a plain-Python computation over the same events, each
quality rule catching its bad row, and late data taken in by re-running its
day."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest

from common.clients import bigquery_client
from pipeline.validation import Limits, parse_message
from provision import ensure_dataset, ensure_tables_api, ensure_views
from reconcile.checks import query
from schemas import event_specs
from schemas.contract import bigquery_row, format_timestamp
from tests.helpers import activity, inventory, order
from warehouse import DAILY_TABLES, affected_days, run_day

pytestmark = pytest.mark.stack
DATASET = "warehouse_test"
DAY1, DAY2 = date(2026, 3, 1), date(2026, 3, 2)
T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
ALICE = "a11ce000-0000-4000-8000-000000000001"
PRODUCTS = [f"p0000000-0000-4000-8000-00000000000{i}" for i in range(1, 5)]
CUSTOMERS = [f"c0000000-0000-4000-8000-00000000000{i}" for i in range(1, 7)]
PLATFORMS = ("web", "mobile", "tablet")
RANK = {"pending": 1, "processing": 2, "shipped": 3, "delivered": 4}


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=timezone.utc)


def _order(t, order_id, customer, city="Berlin", country="DE", status="pending", lines=((0, 2, 9.5),), total=None,
           placed=None):
    items = [{"product_id": PRODUCTS[p], "product_name": f"Product {p}", "quantity": q, "price": price}
             for p, q, price in lines]
    return order(t, order_id=order_id, customer_id=customer, status=status, items=items,
                 shipping_address={"street": "1 Main St", "city": city, "country": country},
                 total_amount=round(sum(q * price for _, q, price in lines), 2) if total is None else total,
                 order_date=format_timestamp(placed or t))


def _known_input() -> dict:
    """The events, by kind: Alice's three orders (Berlin, Berlin, then
    Paris), a seeded mix of orders, stock movements and activities over two
    days, and one bad row per quality rule."""
    rng = random.Random(17)
    alice = [
        _order(_at(DAY1, 10), "0a000000-0000-4000-8000-000000000001", ALICE, lines=((0, 2, 9.5),)),
        _order(_at(DAY1, 12), "0a000000-0000-4000-8000-000000000002", ALICE, lines=((1, 1, 10.0),)),
        _order(_at(DAY2, 9), "0a000000-0000-4000-8000-000000000003", ALICE, "Paris", "FR", lines=((2, 1, 5.25),)),
    ]
    orders = []
    for n in range(24):
        day = (DAY1, DAY2)[n % 2]
        placed = _at(day, rng.randint(0, 20), rng.randint(0, 59))
        oid = f"0b000000-0000-4000-8000-{n:012d}"
        customer = rng.choice(CUSTOMERS)
        city, country = rng.choice([("Berlin", "DE"), ("Lyon", "FR"), ("Austin", "US")])
        lines = tuple((rng.randrange(4), rng.randint(1, 3), rng.choice([9.99, 0.1, 12.5])) for _ in range(rng.randint(1, 2)))
        for k, status in enumerate(["pending", "processing", "shipped"][:rng.randint(1, 3)]):
            orders.append(_order(placed + timedelta(minutes=20 * k), oid, customer, city, country, status, lines,
                                 placed=placed))
    stock = [inventory(_at(DAY1, 0, 30), inventory_id=f"1b000000-0000-4000-8000-{p:012d}", product_id=PRODUCTS[p],
                       warehouse_id="w-1", quantity_change=50, reason="restock") for p in range(3)]
    for n in range(30):
        day = (DAY1, DAY2)[n % 2]
        reason = ["restock", "sale", "return", "damage"][n % 4]
        change = {"restock": 20, "sale": -rng.randint(1, 3), "return": 1, "damage": -1}[reason]
        stock.append(inventory(_at(day, 1 + n // 2, 5), inventory_id=f"1c000000-0000-4000-8000-{n:012d}",
                               product_id=PRODUCTS[n % 3], warehouse_id="w-1", quantity_change=change, reason=reason))
    clicks = []
    # Groups of four clicks (view, cart, view, login): one user, platform and day each.
    for n in range(48):
        group = n // 4
        day = (DAY1, DAY2)[(group // 2) % 2]
        user = [*CUSTOMERS, ALICE][group % 7]
        kind = ["view_product", "add_to_cart", "view_product", "login"][n % 4]
        if group % 5 == 4 and kind == "add_to_cart":
            kind = "logout"  # some viewers never add to cart
        clicks.append(activity(_at(day, 3 + group, n), user_id=user, activity_type=kind,
                               metadata={"session_id": f"5e55e55e-0000-4000-8000-{n:012d}",
                                         "platform": PLATFORMS[group % 3]}))
    bad = {
        # total 50.00 for 2 x 9.50: off by 31
        "order_total_mismatch": _order(_at(DAY1, 15), "0c000000-0000-4000-8000-000000000001", CUSTOMERS[0],
                                       lines=((0, 2, 9.5),), total=50.0),
        # pending at 16:30 after shipped at 16:00
        "order_status_backwards": [
            _order(_at(DAY2, 16), "0c000000-0000-4000-8000-000000000002", CUSTOMERS[1], status="shipped"),
            _order(_at(DAY2, 16, 30), "0c000000-0000-4000-8000-000000000002", CUSTOMERS[1], status="pending"),
        ],
        # product 4 in warehouse w-2: nothing in stock, then a sale of 3
        "negative_stock": inventory(_at(DAY2, 18), inventory_id="1d000000-0000-4000-8000-000000000001",
                                    product_id=PRODUCTS[3], warehouse_id="w-2", quantity_change=-3, reason="sale"),
    }
    # As the brief sends orders: no updated_at, so every status event happens at the order_date. Not backwards.
    brief = []
    for status in ("pending", "processing", "shipped"):
        body = _order(_at(DAY2, 11), "0f000000-0000-4000-8000-000000000001", CUSTOMERS[4], "Lyon", "FR", status)
        del body["updated_at"]
        brief.append(body)
    orders.extend(brief)
    # An order whose statuses span midnight.
    span = "0d000000-0000-4000-8000-000000000001"
    for status, t in (("pending", _at(DAY1, 23, 30)), ("processing", _at(DAY1, 23, 50)), ("shipped", _at(DAY2, 0, 10))):
        orders.append(_order(t, span, CUSTOMERS[5], "Austin", "US", status, ((1, 2, 12.5),), placed=_at(DAY1, 23, 30)))
    return {"alice": alice, "orders": orders, "stock": stock, "clicks": clicks, "bad": bad}


def _bodies(known: dict) -> list[dict]:
    bad = known["bad"]
    return [*known["alice"], *known["orders"], *known["stock"], *known["clicks"], bad["order_total_mismatch"],
            *bad["order_status_backwards"], bad["negative_stock"]]


def _insert(client, project: str, bodies: list[dict], ingest: datetime | None = None) -> None:
    """Rows as the job writes them; ingested 2 s after their event time unless
    `ingest` says when (late data, changes)."""
    rows = defaultdict(list)
    for body in bodies:
        event = parse_message(orjson.dumps(body), None, None, now=T0 + timedelta(days=3),
                              limits=Limits(max_event_age=None))
        assert not isinstance(event, Exception) and event.event_type, event
        at = ingest or event.event_time + timedelta(seconds=2)
        rows[event_specs()[event.event_type].name].append(bigquery_row(event, at, at, "stream"))
    for table, items in rows.items():
        assert not client.insert_rows_json(f"{project}.{DATASET}.{table}", items, retry=None)


SESSIONS = [  # (user, start hour, duration s, platform): what user_sessions_current holds
    (CUSTOMERS[0], _at(DAY1, 3), 600.0, "web"), (CUSTOMERS[1], _at(DAY1, 4), 120.0, "mobile"),
    (CUSTOMERS[2], _at(DAY2, 5), 300.0, "web"),
]


def _session_rows() -> list[dict]:
    out = []
    for n, (user, start, duration, platform) in enumerate(SESSIONS):
        end = start + timedelta(seconds=duration)
        out.append({"row_id": f"r{n}", "session_id": f"s{n}", "user_id": user, "session_start": format_timestamp(start),
                    "session_end": format_timestamp(end), "duration_s": duration, "event_count": 3,
                    "activity_counts": [{"activity": "view_product", "count": 3}], "platform": platform,
                    "converted": False, "window_start": format_timestamp(start),
                    "window_end": format_timestamp(end + timedelta(minutes=30)), "gap_s": 1800, "version": 1,
                    "timing": "ON_TIME", "is_last": False, "emitted_at": format_timestamp(end)})
    return out


@pytest.fixture(scope="module")
def built(stack):
    client = bigquery_client(stack.project)
    ensure_dataset(client, stack.project, DATASET, "US")
    ensure_tables_api(client, stack.project, DATASET)
    ensure_views(client, stack.project, DATASET)
    known = _known_input()
    _insert(client, stack.project, _bodies(known))
    assert not client.insert_rows_json(f"{stack.project}.{DATASET}.user_sessions", _session_rows(), retry=None)
    runs = [run_day(client, stack.project, DATASET, day) for day in (DAY1, DAY2)]
    return {"client": client, "known": known, "runs": runs}


def _q(built, stack, sql, params=None):
    return query(built["client"], sql.replace("D.", f"`{stack.project}.{DATASET}`."), params)


def _table(built, stack, name, order_by):
    rows = _q(built, stack, f"SELECT * FROM D.{name} ORDER BY {order_by}")
    return [{k: v for k, v in r.items() if k != "built_at"} for r in rows]


def test_a_changed_address_opens_a_new_profile_version(built, stack):
    rows = _q(built, stack, "SELECT * FROM D.dim_customer WHERE customer_id = @c ORDER BY valid_from", {"c": ALICE})
    got = [(r["city"], r["country"], r["valid_from"], r["valid_to"], r["is_current"], r["first_order_at"],
            r["last_order_at"], r["orders_in_version"], r["order_count"], r["lifetime_value"]) for r in rows]
    # By hand: 19.00 + 10.00 in Berlin on day 1, 5.25 in Paris on day 2.
    assert got == [
        ("Berlin", "DE", _at(DAY1, 10), _at(DAY2, 9), False, _at(DAY1, 10), _at(DAY1, 12), 2, 2, Decimal("29")),
        ("Paris", "FR", _at(DAY2, 9), None, True, _at(DAY1, 10), _at(DAY2, 9), 1, 3, Decimal("34.25")),
    ]
    # Every customer has exactly one current version, and versions tile time.
    bad = _q(built, stack, "SELECT customer_id FROM D.dim_customer GROUP BY customer_id "
                           "HAVING COUNTIF(is_current) != 1 OR COUNTIF(valid_to IS NULL) != 1")
    assert bad == []


def test_rerunning_a_day_changes_nothing(built, stack):
    before = {t: _q(built, stack, f"SELECT * FROM D.{t}") for t in DAILY_TABLES}
    assert all(before[t] for t in DAILY_TABLES), {t: len(v) for t, v in before.items()}
    for day in (DAY2, DAY1):  # in any order
        results = run_day(built["client"], stack.project, DATASET, day)
        assert {r["table"]: r["changed"] for r in results} == {t: 0 for t in DAILY_TABLES}
    after = {t: _q(built, stack, f"SELECT * FROM D.{t}") for t in DAILY_TABLES}
    key = lambda r: orjson.dumps(r, default=str, option=orjson.OPT_SORT_KEYS)  # noqa: E731
    for table in DAILY_TABLES:
        assert sorted(map(key, before[table])) == sorted(map(key, after[table])), table  # built_at too


def _excluded_order_events(known) -> set[tuple[str, str]]:
    bad = known["bad"]
    return {(bad["order_total_mismatch"]["order_id"], "pending"),
            (bad["order_status_backwards"][1]["order_id"], "pending")}


def _orders(known) -> list[dict]:
    excluded = _excluded_order_events(known)
    bad = known["bad"]
    every = [*known["alice"], *known["orders"], bad["order_total_mismatch"], *bad["order_status_backwards"]]
    return [o for o in every if (o["order_id"], o["status"]) not in excluded]


def _day_of(text: str) -> date:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).date()


def _event_day(o: dict) -> date:
    """An order's event time as the contract says: updated_at, else order_date."""
    return _day_of(o.get("updated_at") or o["order_date"])


def _money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def test_daily_sales_equal_a_plain_python_sum(built, stack):
    want = defaultdict(lambda: {"orders": set(), "revenue": Decimal(0), "items": 0})
    for o in _orders(built["known"]):
        cell = want[(_event_day(o), o["shipping_address"]["country"], o["status"])]
        cell["orders"].add(o["order_id"])
        cell["revenue"] += _money(o["total_amount"])
        cell["items"] += sum(i["quantity"] for i in o["items"])
    want = {k: (len(v["orders"]), v["revenue"], v["items"]) for k, v in want.items()}
    got = {(r["day"], r["country"], r["status"]): (r["orders"], _money(r["revenue"]), r["items"])
           for r in _table(built, stack, "daily_sales", "day, country, status")}
    assert got == want


def test_daily_product_equals_a_plain_python_sum(built, stack):
    known = built["known"]
    current = {}
    for o in _orders(known):  # each order as it stands: its latest status
        if o["order_id"] not in current or RANK[o["status"]] > RANK[current[o["order_id"]]["status"]]:
            current[o["order_id"]] = o
    want = defaultdict(lambda: defaultdict(int))
    for o in current.values():
        for i in o["items"]:
            cell = want[(_day_of(o["order_date"]), i["product_id"])]
            cell["units_sold"] += i["quantity"]
            cell["sales_amount"] += _money(i["quantity"] * i["price"])
    moves = [*known["stock"], known["bad"]["negative_stock"]]  # a flagged movement still counts
    for m in moves:
        cell = want[(_day_of(m["timestamp"]), m["product_id"])]
        cell[{"restock": "restocked", "sale": "sold", "return": "returned", "damage": "damaged"}[m["reason"]]] += \
            m["quantity_change"]
        cell["net_change"] += m["quantity_change"]
    for (day, product), cell in want.items():
        cell["stock_end_of_day"] = sum(m["quantity_change"] for m in moves
                                       if m["product_id"] == product and _day_of(m["timestamp"]) <= day)
    names = ("units_sold", "sales_amount", "restocked", "sold", "returned", "damaged", "net_change", "stock_end_of_day")
    want = {k: tuple(_money(v[n]) if n == "sales_amount" else v[n] for n in names) for k, v in want.items()}
    got = {(r["day"], r["product_id"]): tuple(_money(r[n]) if n == "sales_amount" else r[n] for n in names)
           for r in _table(built, stack, "daily_product", "day, product_id")}
    assert got == want


def test_daily_user_behaviour_equals_a_plain_python_funnel(built, stack):
    known = built["known"]
    buyers = defaultdict(set)
    for o in _orders(known):
        buyers[_day_of(o["order_date"])].add(o["customer_id"])
    per_user = defaultdict(lambda: {"events": 0, "kinds": set()})
    for c in known["clicks"]:
        u = per_user[(_day_of(c["timestamp"]), c["metadata"]["platform"], c["user_id"])]
        u["events"] += 1
        u["kinds"].add(c["activity_type"])
    want = defaultdict(lambda: [0, 0, 0, 0, 0])  # users, events, viewers, carters, buyers
    for (day, platform, user), u in per_user.items():
        cell = want[(day, platform)]
        viewed, carted = "view_product" in u["kinds"], "add_to_cart" in u["kinds"]
        cell[0] += 1
        cell[1] += u["events"]
        cell[2] += viewed
        cell[3] += viewed and carted
        cell[4] += viewed and carted and user in buyers[day]
    sessions = defaultdict(list)
    for _, start, duration, platform in SESSIONS:
        sessions[(start.date(), platform)].append(duration)
    day_events = defaultdict(int)
    for (day, _), cell in want.items():
        day_events[day] += cell[1]
    got = _table(built, stack, "daily_user_behaviour", "day, platform")
    assert {(r["day"], r["platform"]) for r in got} == set(want)
    for r in got:
        users, events, viewers, carters, buyers_n = want[(r["day"], r["platform"])]
        durations = sessions.get((r["day"], r["platform"]), [])
        assert (r["active_users"], r["events"], r["viewers"], r["carters"], r["buyers"], r["sessions"]) == \
            (users, events, viewers, carters, buyers_n, len(durations)), r
        assert r["event_share"] == pytest.approx(events / day_events[r["day"]])
        assert r["avg_session_s"] == (pytest.approx(sum(durations) / len(durations)) if durations else None)
        assert r["view_to_cart"] == (pytest.approx(carters / viewers) if viewers else None)
    assert any(r["buyers"] for r in got) and any(r["sessions"] for r in got)
    assert any(r["carters"] < r["viewers"] for r in got)  # the input exercises every column


def test_each_quality_rule_quarantines_its_bad_row(built, stack):
    bad = built["known"]["bad"]
    rows = _q(built, stack, "SELECT rule, action, event_type, entity_id, detail, day FROM D.dq_quarantine "
                            "ORDER BY rule")
    assert [(r["rule"], r["action"], r["event_type"], r["entity_id"], r["day"]) for r in rows] == [
        ("negative_stock", "flagged", "inventory", f"{PRODUCTS[3]}/w-2", DAY2),
        ("order_status_backwards", "excluded", "order", bad["order_status_backwards"][1]["order_id"], DAY2),
        ("order_total_mismatch", "excluded", "order", bad["order_total_mismatch"]["order_id"], DAY1),
    ]
    details = {r["rule"]: r["detail"] for r in rows}
    assert details["order_status_backwards"] == "pending after shipped"
    assert "50" in details["order_total_mismatch"] and "19" in details["order_total_mismatch"]
    assert details["negative_stock"].startswith("stock -3")
    report = {(r["day"], r["rule"]): (r["checked"], r["quarantined"])
              for r in _q(built, stack, "SELECT * FROM D.dq_daily_report")}
    orders_per_day = defaultdict(int)
    for o in [*built["known"]["alice"], *built["known"]["orders"], bad["order_total_mismatch"],
              *bad["order_status_backwards"]]:
        orders_per_day[_event_day(o)] += 1
    assert report[(DAY1, "order_total_mismatch")] == (orders_per_day[DAY1], 1)
    assert report[(DAY2, "order_total_mismatch")] == (orders_per_day[DAY2], 0)
    assert report[(DAY2, "order_status_backwards")] == (orders_per_day[DAY2], 1)
    assert report[(DAY2, "negative_stock")][1] == 1 and report[(DAY1, "negative_stock")][1] == 0
    # An excluded event is in no daily table or profile; the flagged movement still counts in the stock.
    current = _q(built, stack, "SELECT order_id, status FROM D.fact_orders_current WHERE order_id IN UNNEST(@ids)",
                 {"ids": [bad["order_total_mismatch"]["order_id"], bad["order_status_backwards"][0]["order_id"]]})
    assert current == [{"order_id": bad["order_status_backwards"][0]["order_id"], "status": "shipped"}]
    stock = _q(built, stack, "SELECT stock FROM D.dim_product WHERE product_id = @p", {"p": PRODUCTS[3]})
    assert stock == [{"stock": -3}]


def _example(built, stack, name):
    from provision import substitute
    from warehouse import SQL_DIR

    return query(built["client"], substitute((SQL_DIR / "examples" / f"{name}.sql").read_text(), stack.project,
                                             DATASET))


def test_the_example_queries_answer_from_the_warehouse(built, stack):
    """sql/warehouse/examples/: what an analyst or a data scientist runs,
    checked against the known input."""
    then = {r["order_id"]: r["customer_city_then"] for r in _example(built, stack, "orders_with_address_then")}
    alice = built["known"]["alice"]
    assert [then[o["order_id"]] for o in alice] == ["Berlin", "Berlin", "Paris"]
    assert len(then) == len({o["order_id"] for o in _orders(built["known"])})  # every order, once
    revenue = _example(built, stack, "revenue_by_country")
    de = [r for r in revenue if r["country"] == "DE"]
    assert de and de[-1]["revenue_to_date"] == sum(r["revenue"] for r in de)
    funnel = {r["platform"]: r for r in _example(built, stack, "funnel_by_platform")}
    assert set(funnel) <= set(PLATFORMS) and all(r["carters"] <= r["viewers"] for r in funnel.values())
    features = {r["customer_id"]: r for r in _example(built, stack, "customer_features")}
    assert (features[ALICE]["frequency"], features[ALICE]["monetary"], features[ALICE]["address_changes"],
            features[ALICE]["current_city"]) == (3, Decimal("34.25"), 1, "Paris")
    trend = _example(built, stack, "data_quality_trend")
    assert trend[0]["quarantined"] >= 1 and {r["rule"] for r in trend} == {
        "order_total_mismatch", "order_status_backwards", "negative_stock"}


def _rebuild_since(built, stack, since) -> dict:
    """What python -m warehouse daily --since does: the affected days, each
    rebuilt. Returns {day: {table: changed rows}}."""
    days = affected_days(built["client"], stack.project, DATASET, since)
    return {day: {r["table"]: r["changed"] for r in run_day(built["client"], stack.project, DATASET, day)}
            for day in days}


def test_a_late_event_is_taken_in_by_rebuilding_the_days_since_it_arrived(built, stack):
    """An order for day 1 arrives after both days were built: --since finds
    day 1 and rebuilds it and day 2; the order lands in the daily tables and
    in the customer's profile, whose later versions move (the latest address
    is now a later one)."""
    arrived = datetime.now(timezone.utc)
    late = _order(_at(DAY1, 23, 50), "0e000000-0000-4000-8000-000000000001", ALICE, "Rome", "IT",
                  lines=((3, 4, 2.5),))
    _insert(built["client"], stack.project, [late], ingest=arrived)
    changed = _rebuild_since(built, stack, arrived - timedelta(seconds=1))
    assert list(changed) == [DAY1, DAY2]  # its day, and the days after it
    assert changed[DAY1]["daily_sales"] >= 1 and changed[DAY1]["dim_customer"] >= 2
    assert changed[DAY1]["daily_product"] >= 1 and changed[DAY2]["daily_sales"] == 0
    rows = _q(built, stack, "SELECT city, valid_from, valid_to, is_current, order_count FROM D.dim_customer "
                            "WHERE customer_id = @c ORDER BY valid_from", {"c": ALICE})
    assert [(r["city"], r["valid_to"], r["is_current"], r["order_count"]) for r in rows] == [
        ("Berlin", _at(DAY1, 23, 50), False, 2), ("Rome", _at(DAY2, 9), False, 3), ("Paris", None, True, 4)]
    sales = _q(built, stack, "SELECT orders FROM D.daily_sales WHERE day = @d AND country = 'IT'",
               {"d": DAY1.isoformat()})
    assert sales == [{"orders": 1}]
    assert affected_days(built["client"], stack.project, DATASET, datetime.now(timezone.utc)) == []


def test_a_late_restock_clears_a_negative_stock_flag_and_the_stock_after_it(built, stack):
    """Running values carry from day to day: a restock for day 1 that arrives
    late lifts day 2's end-of-day stock and clears day 2's negative-stock
    flag, because every day after the one it arrived for is rebuilt."""
    arrived = datetime.now(timezone.utc)
    restock = inventory(_at(DAY1, 22), inventory_id="1e000000-0000-4000-8000-000000000001", product_id=PRODUCTS[3],
                        warehouse_id="w-2", quantity_change=10, reason="restock")
    before = _q(built, stack, "SELECT stock_end_of_day FROM D.daily_product WHERE day = @d AND product_id = @p",
                {"d": DAY2.isoformat(), "p": PRODUCTS[3]})[0]["stock_end_of_day"]
    _insert(built["client"], stack.project, [restock], ingest=arrived)
    changed = _rebuild_since(built, stack, arrived - timedelta(seconds=1))
    assert list(changed) == [DAY1, DAY2]
    after = _q(built, stack, "SELECT day, stock_end_of_day FROM D.daily_product WHERE product_id = @p ORDER BY day",
               {"p": PRODUCTS[3]})
    assert after[-1] == {"day": DAY2, "stock_end_of_day": before + 10}
    flags = _q(built, stack, "SELECT rule FROM D.dq_quarantine WHERE rule = 'negative_stock'")
    assert flags == []
    report = _q(built, stack, "SELECT quarantined FROM D.dq_daily_report WHERE day = @d AND rule = 'negative_stock'",
                {"d": DAY2.isoformat()})
    assert report == [{"quarantined": 0}]


def test_a_deletion_and_a_correction_across_days_leave_no_stale_rows(built, stack):
    """A deletion sent for one status event of an order removes every event
    of the order from the facts, the daily tables and the profile; a
    correction that moves an event's updated_at to the next day moves its
    fact row there, never two rows."""
    known = built["known"]
    # The deletion is sent for the order's day-2 event; its day-1 events must go as well.
    doomed = next(o for o in known["orders"] if o["order_id"] == "0d000000-0000-4000-8000-000000000001"
                  and o["status"] == "shipped")
    moved = next(o for o in known["orders"] if o["status"] == "pending" and _event_day(o) == DAY1
                 and o["order_id"] != doomed["order_id"])
    arrived = datetime.now(timezone.utc)
    changes = [
        {**doomed, "change_type": "deletion", "changed_at": format_timestamp(_at(DAY2, 23, 59))},
        {**moved, "updated_at": format_timestamp(_at(DAY2, 0, 30)), "change_type": "correction",
         "changed_at": format_timestamp(_at(DAY2, 23, 59))},
    ]
    _insert(built["client"], stack.project, changes, ingest=arrived)
    # Both changes are dated day 2; the deleted order has day-1 events, so day 1 is rebuilt too.
    assert list(_rebuild_since(built, stack, arrived - timedelta(seconds=1))) == [DAY1, DAY2]
    assert _q(built, stack, "SELECT event_id FROM D.fact_order_events WHERE order_id = @o",
              {"o": doomed["order_id"]}) == []
    assert _q(built, stack, "SELECT event_id FROM D.fact_order_items WHERE order_id = @o",
              {"o": doomed["order_id"]}) == []
    rows = _q(built, stack, "SELECT day, event_time FROM D.fact_order_events WHERE event_id = @e",
              {"e": f"{moved['order_id']}:pending"})
    assert rows == [{"day": DAY2, "event_time": _at(DAY2, 0, 30)}]
    # The daily tables follow: the deleted order counts nowhere, the moved event on day 2.
    counted = _q(built, stack, "SELECT SUM(orders) AS n FROM D.daily_sales WHERE status = 'processing' AND day = @d",
                 {"d": DAY1.isoformat()})[0]["n"]
    want = len({o["order_id"] for o in _orders(known) if o["status"] == "processing" and _event_day(o) == DAY1
                and o["order_id"] != doomed["order_id"]})
    assert counted == want
    profile = _q(built, stack, "SELECT SUM(orders_in_version) AS n FROM D.dim_customer WHERE customer_id = @c",
                 {"c": doomed["customer_id"]})[0]["n"] or 0
    alive = {o["order_id"] for o in _orders(known) if o["customer_id"] == doomed["customer_id"]} - {doomed["order_id"]}
    assert profile == len(alive)


def test_the_command_builds_a_range_and_summarises(built, stack):
    env = {**__import__("os").environ, **stack.env()}
    result = subprocess.run([sys.executable, "-m", "warehouse", "daily", f"--project={stack.project}",
                             f"--dataset={DATASET}", "--from=2026-03-01", "--to=2026-03-02"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["2026-03-01", "2026-03-02"]
    assert all("daily_sales 0 changed" in line for line in lines), lines  # already built: nothing changes
    result = subprocess.run([sys.executable, "-m", "warehouse", "summary", f"--project={stack.project}",
                             f"--dataset={DATASET}"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = {line.split()[0]: line for line in result.stdout.strip().splitlines()}
    assert set(summary) == set(DAILY_TABLES)
    assert "2026-03-01 .. 2026-03-02" in summary["daily_sales"]


def test_the_nightly_scheduled_script_is_the_same_build(built, stack):
    """The nightly scheduled query (python -m warehouse scheduled-queries),
    statement by statement: its plan finds the days rows arrived for (none
    after now) and the newest day, and its steps, with
    the loop's day, change nothing on days the command built. (The emulator
    runs neither scripts nor transactions; BigQuery runs the script as one
    job.)"""
    import re

    from google.cloud import bigquery

    from provision import substitute
    from warehouse import PLAN_SQL, scheduled_script

    script = substitute(scheduled_script(), stack.project, DATASET)
    header, *steps = re.split(r"^-- \w+: .*$", script, flags=re.M)
    assert "FOR build IN" in header and "BEGIN TRANSACTION" in header and len(steps) == len(DAILY_TABLES)
    assert steps[-1].rstrip().endswith("COMMIT TRANSACTION;\nEND FOR;")
    plan = query(built["client"], substitute(PLAN_SQL.read_text(), stack.project, DATASET),
                 {"since": datetime.now(timezone.utc) + timedelta(minutes=1)})[0]
    assert plan["first_day"] is None and plan["last_day"] == DAY2
    for day in (DAY1, DAY2):
        config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("day", "DATE", day)])
        for table, sql in zip(DAILY_TABLES, steps):
            sql = sql.replace("COMMIT TRANSACTION;", "").replace("END FOR;", "").strip().rstrip(";")
            job = built["client"].query(sql.replace("build.day", "@day"), job_config=config)
            job.result()
            assert job.num_dml_affected_rows == 0, (day, table)
