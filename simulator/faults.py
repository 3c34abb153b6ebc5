"""Faults on purpose: delays, duplicates, conflicts, malformed messages,
fields the schema does not know yet, and events later than the job's allowed
lateness.

`plan()` turns one generated event into the messages to publish and when,
plus the ledger facts about each distinct message body. Messages follow the
brief (seed 004): the JSON body alone, `event_type` inside it, no Pub/Sub
attributes; `attributes=True` adds the optional hints (event_type, event_id,
event_time). Identity and content hash come from the contract
(`schemas.contract`), exactly as the pipeline computes them. Pure and seeded,
so it is unit-tested.
"""

from __future__ import annotations

import copy
import hashlib
import random
from dataclasses import dataclass, field
from datetime import timedelta

import orjson

from schemas.contract import (ATTR_EVENT_ID, ATTR_EVENT_TIME, ATTR_EVENT_TYPE, BODY_CHANGE_REASON, BODY_CHANGE_TYPE,
                              BODY_CHANGED_AT, BODY_EVENT_ID, BODY_EVENT_TYPE, CORRECTION, DELETION, INVALIDATION,
                              canonicalize, entity_key, format_timestamp, split_body, split_change, user_of)
from simulator.world import Generated

MALFORMED_KINDS = ["invalid_json", "missing_field", "wrong_type", "bad_enum", "bad_timestamp", "unknown_event_type",
                   "missing_event_type", "not_utf8", "oversized", "not_an_object", "out_of_range", "does_not_fit"]
# Fields a newer producer might add (schema evolution): valid events, kept in `extra`.
EXTRA_FIELDS = {"order": [("coupon_code", "SPRING25"), ("shipping_address.zip", "10115")],
                "inventory": [("batch", "B-7")],
                "user_activity": [("metadata.referrer", "newsletter"), ("locale", "de-DE")]}


@dataclass
class FaultConfig:
    late_fraction: float = 0.10
    late_min_s: float = 30.0
    late_max_s: float = 60.0
    duplicate_fraction: float = 0.03
    duplicate_max_gap_s: float = 30.0  # copies may land in another minute or file
    conflict_fraction: float = 0.01
    malformed_fraction: float = 0.02
    extra_field_fraction: float = 0.02
    far_late_fraction: float = 0.0
    far_late_delay_s: float = 330.0  # beyond the job's default allowed lateness
    oversized_bytes: int = 300 * 1024
    attributes: bool = False  # publish the optional event_type / event_id / event_time attributes
    bot_bursts_per_minute: float = 0.0  # bursts of bot_burst_size events from one user in one instant
    bot_burst_size: int = 120            # more than the job's default alert threshold (100)
    # Changes to events already sent (seed 002), published a few seconds after the event:
    correction_fraction: float = 0.0     # a new content supersedes it
    invalidation_fraction: float = 0.0   # it is not valid any more
    deletion_fraction: float = 0.0       # a tombstone: its entity (an order with all its statuses) is gone

    def validate(self) -> None:
        for name in ("late_fraction", "duplicate_fraction", "conflict_fraction", "malformed_fraction",
                     "extra_field_fraction", "far_late_fraction", "correction_fraction", "invalidation_fraction",
                     "deletion_fraction"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
        if self.late_fraction + self.far_late_fraction > 1:
            raise ValueError("--late-fraction + --far-late-fraction must not exceed 1")
        if self.bot_bursts_per_minute < 0:
            raise ValueError("--bot-bursts-per-minute must be >= 0")
        if self.bot_burst_size < 1:
            raise ValueError("--bot-burst-size must be at least 1")
        if not 0 <= self.late_min_s <= self.late_max_s:
            raise ValueError("--late-min must be >= 0 and <= --late-max")
        if self.correction_fraction + self.invalidation_fraction + self.deletion_fraction > 1:
            raise ValueError("--correction-fraction + --invalidation-fraction + --deletion-fraction must not exceed 1")


@dataclass
class Message:
    data: bytes
    attributes: dict
    delay_s: float  # after the event time


@dataclass
class Plan:
    """One distinct message body and its copies, as the ledger records it."""

    event_type: str
    event_time: str
    messages: list[Message]
    intended_delay_s: float
    payload_sha256: str
    event_id: str | None = None       # the identity the pipeline computes (None: malformed, no identity)
    content_hash: str | None = None
    malformed: bool = False
    malformed_kind: str | None = None
    far_late: bool = False
    conflict: bool = False
    extra_fields: list[str] = field(default_factory=list)
    user_id: str | None = None  # whose event it is (schemas.contract.user_of): the alerts are checked by it
    bot: bool = False           # part of a burst published on purpose (the anomaly alerts must fire)
    change_type: str | None = None  # a correction, invalidation or deletion of the event `event_id`
    changed_at: str | None = None
    entity: str | None = None   # what a deletion removes (schemas.contract.entity_key)


def _set_path(payload: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    target = payload
    for name in parents:
        target = target[name]
    target[leaf] = value


def _body(gen: Generated, payload: dict) -> dict:
    """The brief's message: event_type first, then the payload."""
    return {BODY_EVENT_TYPE: gen.event_type, **payload}


def _malform(kind: str, gen: Generated, body: dict, cfg: FaultConfig, rng: random.Random) -> bytes:
    body = copy.deepcopy(body)
    time_field = "order_date" if gen.event_type == "order" else "timestamp"
    if kind == "invalid_json":
        text = orjson.dumps(body)
        return text[: max(1, len(text) // 2)]
    if kind == "missing_field":
        body.pop(rng.choice(sorted(k for k in body if k not in (BODY_EVENT_TYPE, "updated_at"))))
    elif kind == "wrong_type":
        key = {"order": "total_amount", "inventory": "quantity_change", "user_activity": "metadata"}[gen.event_type]
        body[key] = "not-a-number" if key != "metadata" else ["not", "a", "record"]
    elif kind == "bad_enum":
        key = {"order": "status", "inventory": "reason", "user_activity": "activity_type"}[gen.event_type]
        body[key] = "teleported"
    elif kind == "bad_timestamp":
        body[time_field] = "31/02/2025 25:61"
        body.pop("updated_at", None)
    elif kind == "unknown_event_type":
        body[BODY_EVENT_TYPE] = "refund"
    elif kind == "missing_event_type":
        body.pop(BODY_EVENT_TYPE)
    elif kind == "not_utf8":
        return b"\xff\xfe\x00" + orjson.dumps(body)[:40]
    elif kind == "oversized":
        body["padding"] = "x" * cfg.oversized_bytes
    elif kind == "not_an_object":
        return orjson.dumps([body])
    elif kind == "out_of_range":  # outside the brief's range, or a date that does not exist
        if gen.event_type == "inventory":
            body["quantity_change"] = 150
        else:
            body[time_field] = "2025-02-30T10:00:00Z"
            body.pop("updated_at", None)
    elif kind == "does_not_fit":  # valid JSON numbers that no BigQuery column can hold
        if gen.event_type == "order":
            body["total_amount"] = 1e30
        elif gen.event_type == "inventory":
            body["quantity_change"] = 2 ** 63
        else:
            body["metadata"] = dict(body["metadata"], platform=None)
    return orjson.dumps(body)


def _backdate(gen: Generated, seconds: float) -> Generated:
    """The same event with its event time `seconds` earlier: published now it
    is later than the job's allowed lateness, without the run having to
    outlive that lateness. Only stand-alone event types are back-dated, so an
    order's lifecycle stays in time order."""
    old = gen.event_time - timedelta(seconds=seconds)
    return Generated(gen.event_type, dict(gen.payload, timestamp=format_timestamp(old)), old)


def _conflicting(gen: Generated, rng: random.Random) -> dict | None:
    """The same identity with another content: what a buggy or re-sending
    producer does. User activity is identified by its content, so it cannot
    conflict without an explicit id."""
    payload = copy.deepcopy(gen.payload)
    if gen.event_type == "inventory":
        payload["quantity_change"] = payload["quantity_change"] + (1 if payload["quantity_change"] < 100 else -1)
    elif gen.event_type == "order":
        payload["shipping_address"]["street"] = f"{rng.randint(201, 400)} Corrected St"
    else:
        return None
    return payload


def _attributes(cfg: FaultConfig, event_type: str, event_id: str | None, event_time: str) -> dict:
    if not cfg.attributes:
        return {}
    attrs = {ATTR_EVENT_TYPE: event_type, ATTR_EVENT_TIME: event_time}
    if event_id:
        attrs[ATTR_EVENT_ID] = event_id
    return attrs


def _valid_plan(event_type: str, payload: dict, data: bytes, explicit_id: str | None, messages, intended: float,
                **facts) -> Plan:
    payload, change = split_change(payload)
    event = canonicalize(event_type, payload, explicit_id, change)  # the contract's identity and content hash
    return Plan(event_type=event_type, event_time=format_timestamp(event.event_time), messages=messages,
                intended_delay_s=round(intended, 3), payload_sha256=hashlib.sha256(data).hexdigest(),
                event_id=event.event_id, content_hash=event.content_hash, user_id=user_of(event_type, payload),
                change_type=change.kind if change else None,
                changed_at=format_timestamp(change.changed_at) if change else None,
                entity=entity_key(event_type, event.payload, event.event_id), **facts)


def _change_of(gen: Generated, original: Plan, cfg: FaultConfig, rng: random.Random, delay: float) -> Plan | None:
    """A change of an event just planned, published a few seconds after it
    (its changed_at is when it is sent, so never in the future)."""
    roll = rng.random()
    if roll < cfg.correction_fraction:
        kind = CORRECTION
    elif roll < cfg.correction_fraction + cfg.invalidation_fraction:
        kind = INVALIDATION
    elif roll < cfg.correction_fraction + cfg.invalidation_fraction + cfg.deletion_fraction:
        kind = DELETION
    else:
        return None
    payload = copy.deepcopy(gen.payload)
    if kind == CORRECTION:
        if gen.event_type == "inventory":
            payload["quantity_change"] += 1 if payload["quantity_change"] < 100 else -1
        elif gen.event_type == "order":
            payload["shipping_address"]["street"] = f"{rng.randint(1, 200)} Corrected Av"
        else:
            payload["user_agent"] = payload["user_agent"] + " (corrected)"
    gap = delay + rng.uniform(3, 10)
    body = {BODY_EVENT_TYPE: gen.event_type, **payload, BODY_CHANGE_TYPE: kind,
            BODY_CHANGED_AT: format_timestamp(gen.event_time + timedelta(seconds=gap)),
            BODY_CHANGE_REASON: f"simulated {kind}"}
    if gen.event_type == "user_activity":  # identified by its content: the change names it by its id
        body[BODY_EVENT_ID] = original.event_id
    data = orjson.dumps(body)
    return _valid_plan(gen.event_type, {k: v for k, v in body.items() if k not in (BODY_EVENT_TYPE, BODY_EVENT_ID)},
                       data, body.get(BODY_EVENT_ID), [Message(data, {}, gap)], gap, far_late=original.far_late)


def plan_of_body(data: bytes) -> Plan:
    """The Plan of a valid message body written elsewhere (a test's events),
    so that it is recorded in the ledger like the simulator's own."""
    payload, event_type, _ = split_body(orjson.loads(data))
    return _valid_plan(event_type, payload, data, None, [Message(data, {}, 0.0)], 0.0)


def bot_plan(gen: Generated, cfg: FaultConfig, explicit_id: str | None = None) -> Plan:
    """One event of a bot burst: published at once, once, well formed (the
    burst itself is the fault), marked `bot` in the ledger."""
    event_time = format_timestamp(gen.event_time)
    data = orjson.dumps(_body(gen, gen.payload))
    attributes = _attributes(cfg, gen.event_type, explicit_id if cfg.attributes else None, event_time)
    return _valid_plan(gen.event_type, gen.payload, data, explicit_id if cfg.attributes else None,
                       [Message(data, attributes, 0.0)], 0.0, bot=True)


def plan(gen: Generated, cfg: FaultConfig, rng: random.Random, explicit_id: str | None = None) -> list[Plan]:
    """The messages for one generated event: usually one Plan, two when a
    conflicting copy follows the original. `explicit_id` is published as the
    event_id attribute when attributes are on."""
    roll = rng.random()
    far_late = roll < cfg.far_late_fraction and gen.event_type != "order"
    if far_late:
        intended = cfg.far_late_delay_s + rng.uniform(0, 30)
        gen = _backdate(gen, intended)
        delay = 0.0  # published now, its event time already far behind
    elif cfg.far_late_fraction <= roll < cfg.far_late_fraction + cfg.late_fraction:
        intended = delay = rng.uniform(cfg.late_min_s, cfg.late_max_s)
    else:
        intended = delay = 0.0
    explicit_id = explicit_id if cfg.attributes else None
    event_time = format_timestamp(gen.event_time)
    attributes = _attributes(cfg, gen.event_type, explicit_id, event_time)
    payload = copy.deepcopy(gen.payload)

    malformed_kind = rng.choice(MALFORMED_KINDS) if rng.random() < cfg.malformed_fraction else None
    if malformed_kind:
        data = _malform(malformed_kind, gen, _body(gen, payload), cfg, rng)
        if malformed_kind in ("unknown_event_type", "missing_event_type"):
            attributes.pop(ATTR_EVENT_TYPE, None)  # else the attribute would name the type
        messages = [Message(data, attributes, delay)]
        # user_id: whose message it is, so that an erasure (python -m gdpr) removes its ledger row too
        return [Plan(event_type=gen.event_type, event_time=event_time, messages=messages,
                     intended_delay_s=round(intended, 3), payload_sha256=hashlib.sha256(data).hexdigest(),
                     event_id=explicit_id, malformed=True, malformed_kind=malformed_kind, far_late=far_late,
                     user_id=user_of(gen.event_type, gen.payload))]

    extra_fields = []
    if rng.random() < cfg.extra_field_fraction:
        path, value = rng.choice(EXTRA_FIELDS[gen.event_type])
        _set_path(payload, path, value)
        extra_fields.append(path)
    data = orjson.dumps(_body(gen, payload))
    messages = [Message(data, attributes, delay)]
    if rng.random() < cfg.duplicate_fraction:
        messages.append(Message(data, dict(attributes), delay + rng.uniform(0.5, cfg.duplicate_max_gap_s)))
    plans = [_valid_plan(gen.event_type, payload, data, explicit_id, messages, intended, far_late=far_late,
                         extra_fields=extra_fields)]
    other = _conflicting(gen, rng) if rng.random() < cfg.conflict_fraction else None
    if other is not None and not extra_fields:
        # Published well after the original, so the original is the copy the job accepts.
        other_data = orjson.dumps(_body(gen, other))
        gap = delay + rng.uniform(3, max(3.0, cfg.duplicate_max_gap_s))
        plans.append(_valid_plan(gen.event_type, other, other_data, explicit_id,
                                 [Message(other_data, dict(attributes), gap)], gap, far_late=far_late, conflict=True))
    wants_changes = cfg.correction_fraction or cfg.invalidation_fraction or cfg.deletion_fraction
    changed = _change_of(gen, plans[0], cfg, rng, delay) if wants_changes and not explicit_id else None
    if changed is not None:
        plans.append(changed)
    return plans
