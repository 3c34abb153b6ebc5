"""Faults on purpose: delays, duplicates, malformed messages, missing ids.

`plan()` turns one generated event into the messages to publish and when,
plus the ledger facts about it. Pure and seeded, so it is unit-tested.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field

import orjson

from pipeline.validation import (EVENT_ID_ATTR, EVENT_TIME_ATTR, EVENT_TYPE_ATTR, derived_event_id,
                                 format_timestamp)
from simulator.world import Generated

MALFORMED_KINDS = ["invalid_json", "missing_field", "wrong_type", "bad_enum", "bad_timestamp",
                   "unknown_event_type", "not_utf8", "oversized", "not_an_object", "unknown_field"]


@dataclass
class FaultConfig:
    late_fraction: float = 0.10
    late_min_s: float = 30.0
    late_max_s: float = 60.0
    duplicate_fraction: float = 0.03
    duplicate_max_gap_s: float = 30.0  # copies may land in another window or pane
    malformed_fraction: float = 0.02
    no_id_fraction: float = 0.01
    too_late_fraction: float = 0.0
    too_late_delay_s: float = 330.0  # beyond the job's default window + allowed lateness + margin
    oversized_bytes: int = 300 * 1024

    def validate(self) -> None:
        for name in ("late_fraction", "duplicate_fraction", "malformed_fraction", "no_id_fraction",
                     "too_late_fraction"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
        if self.late_fraction + self.too_late_fraction > 1:
            raise ValueError("--late-fraction + --too-late-fraction must not exceed 1")
        if not 0 <= self.late_min_s <= self.late_max_s:
            raise ValueError("--late-min must be >= 0 and <= --late-max")


@dataclass
class Message:
    data: bytes
    attributes: dict
    delay_s: float  # after the event time


@dataclass
class Plan:
    event_id: str
    event_type: str
    event_time: str
    messages: list[Message]
    intended_delay_s: float
    malformed: bool = False
    malformed_kind: str | None = None
    too_late: bool = False
    extra: dict = field(default_factory=dict)


def _malform(kind: str, gen: Generated, attributes: dict, cfg: FaultConfig, rng: random.Random) -> tuple[bytes, dict]:
    payload = copy.deepcopy(gen.payload)
    attrs = dict(attributes)
    time_field = {"order": "updated_at"}.get(gen.event_type, "timestamp")
    if kind == "invalid_json":
        text = orjson.dumps(payload)
        return text[: max(1, len(text) // 2)], attrs
    if kind == "missing_field":
        payload.pop(rng.choice(sorted(payload)))
    elif kind == "wrong_type":
        key = {"order": "total_amount", "inventory": "quantity_change", "user_activity": "metadata"}[gen.event_type]
        payload[key] = "not-a-number" if key != "metadata" else ["not", "a", "record"]
    elif kind == "bad_enum":
        key = {"order": "status", "inventory": "reason", "user_activity": "activity_type"}[gen.event_type]
        payload[key] = "teleported"
    elif kind == "bad_timestamp":
        payload[time_field] = "31/02/2025 25:61"
    elif kind == "unknown_event_type":
        attrs[EVENT_TYPE_ATTR] = "refund"
    elif kind == "not_utf8":
        return b"\xff\xfe\x00" + orjson.dumps(payload)[:40], attrs
    elif kind == "oversized":
        payload["padding"] = "x" * cfg.oversized_bytes
    elif kind == "not_an_object":
        return orjson.dumps([payload]), attrs
    elif kind == "unknown_field":
        payload["coupon_code"] = "SPRING25"
    return orjson.dumps(payload), attrs


def _backdate(gen: Generated, seconds: float) -> Generated:
    """The same event with its event time `seconds` earlier: published now it
    is later than the job's allowed lateness, without the run having to
    outlive that lateness. Only stand-alone event types are back-dated, so an
    order's lifecycle stays in time order."""
    from datetime import timedelta

    old = gen.event_time - timedelta(seconds=seconds)
    payload = dict(gen.payload, timestamp=format_timestamp(old))
    return Generated(gen.event_type, payload, old, gen.event_id)


def plan(gen: Generated, cfg: FaultConfig, rng: random.Random) -> Plan:
    roll = rng.random()
    too_late = roll < cfg.too_late_fraction and gen.event_type != "order"
    if too_late:
        intended = cfg.too_late_delay_s + rng.uniform(0, 30)
        gen = _backdate(gen, intended)
        delay = 0.0  # published now, its event time already far behind
    elif cfg.too_late_fraction <= roll < cfg.too_late_fraction + cfg.late_fraction:
        intended = delay = rng.uniform(cfg.late_min_s, cfg.late_max_s)
    else:
        intended = delay = 0.0

    event_time = format_timestamp(gen.event_time)
    attributes = {EVENT_ID_ATTR: gen.event_id, EVENT_TYPE_ATTR: gen.event_type, EVENT_TIME_ATTR: event_time}
    malformed_kind = rng.choice(MALFORMED_KINDS) if rng.random() < cfg.malformed_fraction else None
    event_id = gen.event_id
    if malformed_kind:
        data, attributes = _malform(malformed_kind, gen, attributes, cfg, rng)
    else:
        data = orjson.dumps(gen.payload)
        if rng.random() < cfg.no_id_fraction:
            # The pipeline derives the id from the content; the ledger records
            # that same id (one function, pipeline.validation).
            del attributes[EVENT_ID_ATTR]
            event_id = derived_event_id(gen.event_type, gen.payload)

    messages = [Message(data, attributes, delay)]
    if rng.random() < cfg.duplicate_fraction:
        messages.append(Message(data, dict(attributes), delay + rng.uniform(0.5, cfg.duplicate_max_gap_s)))
    return Plan(event_id=event_id, event_type=gen.event_type, event_time=event_time, messages=messages,
                intended_delay_s=round(intended, 3), malformed=malformed_kind is not None,
                malformed_kind=malformed_kind, too_late=too_late)
