"""Turn one raw Pub/Sub message into a canonical event or a precise rejection.

Pure functions, no Beam: the streaming job, the backfill, the benchmarks and
the hostile-input tests all call `parse_message`. What an event is (type,
identity, event time, canonical values) is the contract's (`schemas.contract`);
this module adds what is about the message: size, encoding, JSON, attribute
hints, and the job's time limits. Every way a message can be wrong raises
`Rejected` with a stable `error_type` (for counting and queries) and a
human-readable `error` (for the person reading the dead-letter table).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import orjson

from schemas import event_specs
from schemas.contract import (ATTR_EVENT_ID, ATTR_EVENT_TYPE, Canonical, ContractError, canonicalize,
                              explicit_id_problem, format_timestamp, split_body, split_change)

_UTC = timezone.utc
MAX_PAYLOAD_COPY = 1 << 20  # bytes of a rejected payload kept in the dead-letter row
_CLAIM_MAX = 128


class Rejected(Exception):
    """The message cannot be accepted. `stage` says which step refused it;
    `claimed_type`/`claimed_id` are what the message said it was (body or
    attributes, unvalidated), for the dead-letter row."""

    def __init__(self, stage: str, error_type: str, error: str, claimed_type=None, claimed_id=None):
        super().__init__(f"{stage}/{error_type}: {error}")
        self.stage = stage
        self.error_type = error_type
        self.error = error
        self.claimed_type = claimed_type
        self.claimed_id = claimed_id


@dataclass(frozen=True)
class Limits:
    """What the parser accepts beyond the contract; one place, filled from the
    pipeline options."""

    max_message_bytes: int = 256 * 1024
    # Event times older than this are refused (None: no limit, for backfills).
    max_event_age: timedelta | None = timedelta(days=30)
    max_future_skew: timedelta = timedelta(minutes=5)


def _claim(value) -> str | None:
    return value[:_CLAIM_MAX] if isinstance(value, str) and value else None


def _resolve(body_value, attr_value, name: str, claimed_type, claimed_id) -> str | None:
    """The body's value, else the attribute's; both present and different is a
    contradiction the producer must fix, not something to guess about."""
    body_value = body_value if body_value not in ("", None) else None
    attr_value = attr_value if attr_value not in ("", None) else None
    if body_value is not None and attr_value is not None and body_value != attr_value:
        raise Rejected("decode", f"{name}_mismatch",
                       f"the body says {name} {body_value!r:.80} but the attribute says {attr_value!r:.80}",
                       claimed_type, claimed_id)
    return body_value if body_value is not None else attr_value


def parse_message(data: bytes, attributes: dict | None, publish_time: datetime | None = None,
                  *, now: datetime | None = None, limits: Limits = Limits()) -> Canonical:
    """Decode, parse and validate one message. Raises Rejected."""
    attributes = attributes or {}
    attr_type, attr_id = attributes.get(ATTR_EVENT_TYPE), attributes.get(ATTR_EVENT_ID)
    claimed_type, claimed_id = _claim(attr_type), _claim(attr_id)
    if not isinstance(data, (bytes, bytearray)):
        raise Rejected("decode", "not_bytes", f"payload is {type(data).__name__}, not bytes", claimed_type, claimed_id)
    if len(data) > limits.max_message_bytes:
        raise Rejected("decode", "oversized", f"payload is {len(data)} bytes, the limit is {limits.max_message_bytes}",
                       claimed_type, claimed_id)
    try:
        body = orjson.loads(data)  # orjson refuses invalid UTF-8 itself; told apart below
    except orjson.JSONDecodeError as exc:
        try:
            bytes(data).decode("utf-8")
        except UnicodeDecodeError as utf8:
            raise Rejected("decode", "not_utf8", f"payload is not UTF-8: {utf8}", claimed_type, claimed_id) from None
        raise Rejected("parse", "invalid_json", f"invalid JSON: {exc}", claimed_type, claimed_id) from None
    if not isinstance(body, dict):
        raise Rejected("parse", "not_an_object", f"payload is a JSON {type(body).__name__}, not an object",
                       claimed_type, claimed_id)

    payload, body_type, body_id = split_body(body)
    claimed_type, claimed_id = _claim(body_type) or claimed_type, _claim(body_id) or claimed_id
    event_type = _resolve(body_type, attr_type, "event_type", claimed_type, claimed_id)
    specs = event_specs()
    if event_type is None:
        raise Rejected("parse", "missing_event_type", "no event_type in the JSON body (nor as an attribute)",
                       claimed_type, claimed_id)
    if not isinstance(event_type, str) or event_type not in specs:
        raise Rejected("parse", "unknown_event_type", f"event_type {event_type!r:.80} is not one of {', '.join(specs)}",
                       claimed_type, claimed_id)
    event_id = _resolve(body_id, attr_id, "event_id", claimed_type, claimed_id)
    if event_id is not None:
        problem = explicit_id_problem(event_id)
        if problem:
            raise Rejected("parse", "invalid_event_id", problem, claimed_type, claimed_id)

    try:
        payload, change = split_change(payload)
        event = canonicalize(event_type, payload, event_id, change)
    except ContractError as err:
        raise Rejected("validate", err.error_type, err.error, claimed_type, claimed_id) from None

    now = now or datetime.now(_UTC)
    if change is not None and change.changed_at > now + limits.max_future_skew:
        raise Rejected("validate", "invalid_change",
                       f"changed_at {format_timestamp(change.changed_at)} is more than {limits.max_future_skew} in "
                       "the future", claimed_type, claimed_id)
    if event.event_time > now + limits.max_future_skew:
        raise Rejected("validate", "timestamp_out_of_range",
                       f"event time {format_timestamp(event.event_time)} is more than {limits.max_future_skew} "
                       "in the future", claimed_type, claimed_id)
    if limits.max_event_age is not None and event.event_time < now - limits.max_event_age:
        raise Rejected("validate", "timestamp_out_of_range",
                       f"event time {format_timestamp(event.event_time)} is older than {limits.max_event_age}",
                       claimed_type, claimed_id)
    return event


def payload_sha256(data) -> str:
    raw = bytes(data) if isinstance(data, (bytes, bytearray)) else repr(data).encode()
    return hashlib.sha256(raw).hexdigest()


def dead_letter_id(stage: str, data: bytes, attributes: dict) -> str:
    canonical = orjson.dumps(attributes or {}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(stage.encode() + b"\x00" + data + b"\x00" + canonical).hexdigest()[:40]


def dead_letter_row(rejection: Rejected, data, attributes: dict | None,
                    publish_time: datetime | None, received_at: datetime) -> dict:
    """The dead-letter table row for a rejected message: raw payload kept."""
    raw = bytes(data) if isinstance(data, (bytes, bytearray)) else repr(data).encode()
    attributes = {str(k)[:256]: str(v)[:1024] for k, v in (attributes or {}).items()}
    try:
        text, b64 = raw[:MAX_PAYLOAD_COPY].decode("utf-8"), None
    except UnicodeDecodeError:
        text = raw[:MAX_PAYLOAD_COPY].decode("utf-8", errors="replace")
        b64 = base64.b64encode(raw[:MAX_PAYLOAD_COPY]).decode()
    return {
        "dead_letter_id": dead_letter_id(rejection.stage, raw, attributes),
        "received_at": format_timestamp(received_at),
        "stage": rejection.stage,
        "error_type": rejection.error_type,
        "error": rejection.error,
        "event_type": _claim(rejection.claimed_type) or _claim(attributes.get(ATTR_EVENT_TYPE)),
        "event_id": _claim(rejection.claimed_id) or _claim(attributes.get(ATTR_EVENT_ID)),
        "publish_time": format_timestamp(publish_time) if publish_time else None,
        "payload": text,
        "payload_base64": b64,
        "payload_size": len(raw),
        "payload_sha256": hashlib.sha256(raw).hexdigest(),
        "attributes": orjson.dumps(attributes).decode(),
    }
