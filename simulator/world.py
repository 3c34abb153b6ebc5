"""A small, consistent e-commerce world that emits the brief's events.

Orders walk pending -> processing -> shipped -> delivered with fixed items and
totals; a processed order's items become `sale` stock movements of the same
products; restocks, returns and damage keep stock plausible; users browse in
sessions on one platform. Payloads are the brief's (seed 004): uuid ids,
float prices, totals summed as floats (so 0.1 + 0.2 style values occur, as
from any real producer), plus the optional extensions of the contract
(`updated_at`, `metadata.product_id`) unless `strict_brief`.

The catalogue (products, customers, warehouses) comes from the seed; the ids
of what happens (orders, stock movements, sessions) come from `new_id`
(uuid4 by default), so two runs with the same seed never publish the same
identities. Tests pass a seeded `new_id` for reproducible ids.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas.contract import format_timestamp

STATUSES = ["pending", "processing", "shipped", "delivered"]
PLATFORMS = ["web", "mobile", "tablet"]
CITIES = [("Berlin", "DE"), ("Paris", "FR"), ("Madrid", "ES"), ("Rome", "IT"), ("Warsaw", "PL"),
          ("Amsterdam", "NL"), ("Lisbon", "PT"), ("Vienna", "AT"), ("Prague", "CZ"), ("Dublin", "IE")]
STREETS = ["Main St", "Station Rd", "High St", "Park Ave", "Church Ln", "Mill Rd", "Oak St", "Lake View"]
ADJECTIVES = ["Classic", "Smart", "Eco", "Pro", "Mini", "Ultra", "Vintage", "Compact"]
NOUNS = ["Backpack", "Headphones", "Kettle", "Lamp", "Sneakers", "Watch", "Blender", "Jacket", "Mug", "Speaker"]
AGENTS = {
    "web": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "tablet": "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
}


@dataclass
class Generated:
    """One logical event: type, payload (without event_type) and event time."""

    event_type: str
    payload: dict
    event_time: datetime


@dataclass
class _Order:
    payload: dict
    stage: int
    next_at: datetime


@dataclass
class _Session:
    user_id: str
    session_id: str
    platform: str
    ip: str
    cart: list = field(default_factory=list)
    actions_left: int = 5


class World:
    def __init__(self, seed: int = 0, n_products: int = 40, n_customers: int = 300, n_warehouses: int = 3,
                 time_scale: float = 1.0, strict_brief: bool = False, new_id=None):
        self.rng = random.Random(seed)
        self.time_scale = time_scale  # <1 compresses the order lifecycle
        self.strict_brief = strict_brief
        self._new_id = new_id or (lambda: str(uuid.uuid4()))
        self.products = [
            {"product_id": self._seeded_uuid(),
             "product_name": f"{self.rng.choice(ADJECTIVES)} {self.rng.choice(NOUNS)}",
             # Most prices have cents; some are computed (a discount), with every
             # decimal a float carries, as producers send them.
             "price": (round(self.rng.uniform(3, 400), 2) if i % 5 else self.rng.uniform(3, 400) * 0.85)}
            for i in range(n_products)
        ]
        self.customers = [self._seeded_uuid() for _ in range(n_customers)]
        self.warehouses = [self._seeded_uuid() for _ in range(n_warehouses)]
        self.orders: list[tuple[datetime, int, _Order]] = []  # heap by due time
        self.sales: deque[tuple[str, str, int]] = deque()  # (product, warehouse, qty) awaiting a sale event
        self.sessions: dict[str, _Session] = {}
        self._order_seq = 0
        self._seq = 0

    # -- ids ------------------------------------------------------------------------
    def _seeded_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def new_event_id(self) -> str:
        """An explicit event id, for runs that publish the event_id attribute."""
        return self._new_id()

    # -- generators --------------------------------------------------------------------
    def next_event(self, event_type: str, now: datetime) -> Generated:
        if event_type == "order":
            payload = self._order(now)
        elif event_type == "inventory":
            payload = self._inventory(now)
        elif event_type == "user_activity":
            payload = self._activity(now)
        else:
            raise ValueError(f"unknown event type {event_type}")
        return Generated(event_type, payload, now)

    def _order(self, now: datetime) -> dict:
        due = self.orders[0][2] if self.orders and self.orders[0][0] <= now else None
        if due is None:
            self._order_seq += 1
            items = []
            for product in self.rng.sample(self.products, self.rng.randint(1, 4)):
                items.append({"product_id": product["product_id"], "product_name": product["product_name"],
                              "quantity": self.rng.randint(1, 5), "price": product["price"]})
            city, country = self.rng.choice(CITIES)
            payload = {
                "order_id": self._new_id(),
                "customer_id": self.rng.choice(self.customers),
                "order_date": format_timestamp(now),
                "status": "pending",
                "items": items,
                "shipping_address": {"street": f"{self.rng.randint(1, 200)} {self.rng.choice(STREETS)}",
                                     "city": city, "country": country},
                "total_amount": sum(i["quantity"] * i["price"] for i in items),  # float sum, unrounded
            }
            if not self.strict_brief:
                payload["updated_at"] = format_timestamp(now)
            self._schedule(_Order(payload, 0, now))
            return dict(payload)
        heapq.heappop(self.orders)
        due.stage += 1
        payload = dict(due.payload, status=STATUSES[due.stage])
        if not self.strict_brief:  # without the extension, every status event has the order_date's event time
            payload["updated_at"] = format_timestamp(now)
        due.payload = payload
        if STATUSES[due.stage] == "processing":
            warehouse = self.rng.choice(self.warehouses)
            for item in payload["items"]:
                self.sales.append((item["product_id"], warehouse, min(item["quantity"], 100)))
        if due.stage < len(STATUSES) - 1:
            self._schedule(due)
        return payload

    def _schedule(self, order: _Order) -> None:
        gap = {0: (5, 30), 1: (20, 90), 2: (30, 180)}[order.stage]
        order.next_at = order.next_at + timedelta(seconds=self.rng.uniform(*gap) * self.time_scale)
        self._seq += 1
        heapq.heappush(self.orders, (order.next_at, self._seq, order))

    def _inventory(self, now: datetime) -> dict:
        if self.sales:
            product, warehouse, qty = self.sales.popleft()
            change, reason = -qty, "sale"
        else:
            product = self.rng.choice(self.products)["product_id"]
            warehouse = self.rng.choice(self.warehouses)
            reason = self.rng.choices(["restock", "return", "damage"], weights=[6, 3, 1])[0]
            change = {"restock": self.rng.randint(20, 100), "return": self.rng.randint(1, 3),
                      "damage": -self.rng.randint(1, 5)}[reason]
        return {"inventory_id": self._new_id(), "product_id": product,
                "warehouse_id": warehouse, "quantity_change": change, "reason": reason,
                "timestamp": format_timestamp(now)}

    def bot_burst(self, now: datetime, size: int) -> list[Generated]:
        """`size` product views from one user within the same instant (each a
        microsecond apart, so each is its own event): a scraper or a fraud
        bot, what the job's anomaly alerts are for."""
        user = self.rng.choice(self.customers)
        session_id, platform = self._new_id(), "web"
        burst = []
        for i in range(size):
            t = now - timedelta(microseconds=i)
            metadata = {"session_id": session_id, "platform": platform}
            if not self.strict_brief:
                metadata["product_id"] = self.rng.choice(self.products)["product_id"]
            payload = {"user_id": user, "activity_type": "view_product", "ip_address": "203.0.113.7",
                       "user_agent": "python-requests/2.32", "timestamp": format_timestamp(t), "metadata": metadata}
            burst.append(Generated("user_activity", payload, t))
        return burst

    def _activity(self, now: datetime) -> dict:
        if len(self.sessions) < 20 or self.rng.random() < 0.2:
            user = self.rng.choice(self.customers)
            platform = self.rng.choice(PLATFORMS)
            session = _Session(user, self._new_id(), platform,
                               f"{self.rng.randint(1, 223)}.{self.rng.randint(0, 255)}.{self.rng.randint(0, 255)}."
                               f"{self.rng.randint(1, 254)}", actions_left=self.rng.randint(3, 12))
            self.sessions[session.session_id] = session
            activity, product = "login", None
        else:
            session = self.sessions[self.rng.choice(list(self.sessions))]
            session.actions_left -= 1
            if session.actions_left <= 0:
                del self.sessions[session.session_id]
                activity, product = "logout", None
            else:
                activity = self.rng.choices(["view_product", "add_to_cart", "remove_from_cart"], weights=[6, 2, 1])[0]
                if activity == "remove_from_cart" and not session.cart:
                    activity = "view_product"
                if activity == "remove_from_cart":
                    product = session.cart.pop()
                else:
                    product = self.rng.choice(self.products)["product_id"]
                    if activity == "add_to_cart":
                        session.cart.append(product)
        metadata = {"session_id": session.session_id, "platform": session.platform}
        if not self.strict_brief:
            metadata["product_id"] = product
        return {"user_id": session.user_id, "activity_type": activity, "ip_address": session.ip,
                "user_agent": AGENTS[session.platform], "timestamp": format_timestamp(now), "metadata": metadata}
