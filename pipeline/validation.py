"""Turn one raw Pub/Sub message into a valid event or a precise rejection.

Pure functions, no Beam: the streaming job, the backfill, the benchmarks and
the hostile-input tests all call `parse_message`. Every way a message can be
wrong raises `Rejected` with a stable `error_type` (for counting and queries)
and a human-readable `error` (for the person reading the dead-letter table).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import orjson
from fastavro.validation import ValidationError, validate

from schemas import TableSpec, event_specs

EVENT_ID_ATTR = "event_id"
EVENT_TYPE_ATTR = "event_type"
EVENT_TIME_ATTR = "event_time"

# event_id goes into BigQuery and logs; it never builds a path or SQL, but a
# strict alphabet keeps it safe to use anywhere and stops garbage ids early.
_EVENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_UTC = timezone.utc
MAX_PAYLOAD_COPY = 1 << 20  # bytes of a rejected payload kept in the dead-letter row


class Rejected(Exception):
    """The message cannot be accepted. `stage` says which step refused it."""

    def __init__(self, stage: str, error_type: str, error: str):
        super().__init__(f"{stage}/{error_type}: {error}")
        self.stage = stage
        self.error_type = error_type
        self.error = error


@dataclass(frozen=True)
class Limits:
    """What the parser accepts; one place, filled from the pipeline options."""

    max_message_bytes: int = 256 * 1024
    # Event times older than this are refused (None: no limit, for backfills).
    max_event_age: timedelta | None = timedelta(days=30)
    max_future_skew: timedelta = timedelta(minutes=5)


@dataclass
class Event:
    """A valid event, with the columns the pipeline adds."""

    event_type: str
    event_id: str
    event_time: datetime
    payload: dict
    publish_time: datetime | None = None
    id_derived: bool = False
    attributes: dict = field(default_factory=dict)

    @property
    def timestamp(self) -> float:
        """Event time in epoch seconds, for Beam's TimestampedValue."""
        return self.event_time.timestamp()


# -- timestamps ----------------------------------------------------------------
def parse_timestamp(text: str) -> datetime:
    """RFC 3339 with an explicit zone -> aware UTC datetime. ValueError if not."""
    if not isinstance(text, str) or not 10 < len(text) <= 40 or "T" not in text.upper():
        raise ValueError(f"not an RFC 3339 timestamp: {text!r:.60}")
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"timestamp has no time zone: {text!r:.60}")
    return value.astimezone(_UTC)


def format_timestamp(value: datetime) -> str:
    """UTC RFC 3339 with microseconds, as BigQuery and the files store it."""
    return value.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- ids -------------------------------------------------------------------------
def derived_event_id(event_type: str, payload: dict) -> str:
    """Deterministic id from the content, so re-deliveries of a message that
    came without an event_id still collapse to one event."""
    canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    return "sha256-" + hashlib.sha256(event_type.encode() + b"\x00" + canonical).hexdigest()[:40]


def dead_letter_id(stage: str, data: bytes, attributes: dict) -> str:
    canonical = orjson.dumps(attributes or {}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(stage.encode() + b"\x00" + data + b"\x00" + canonical).hexdigest()[:40]


# -- structure and constraints beyond Avro types ----------------------------------
def _optional(f: dict) -> bool:
    return "default" in f or (isinstance(f["type"], list) and "null" in f["type"])


def _walk(avro_type, datum, path: str, structure: list[str], constraints: list[str]) -> None:
    """Walk schema and datum together. `structure` gets missing and unknown
    fields; `constraints` gets annotation breaches (minimum, maximum,
    maxLength, maxItems, format). Values of the wrong type are left to
    fastavro, which reports them."""
    if isinstance(avro_type, list):  # ["null", X]
        if datum is None:
            return
        avro_type = next(t for t in avro_type if t != "null")
    if not isinstance(avro_type, dict):
        return
    if avro_type.get("type") == "record" and isinstance(datum, dict):
        known = {f["name"] for f in avro_type["fields"]}
        for name in datum:
            if name not in known:
                structure.append(f"{path}{name}: unknown field")
        for f in avro_type["fields"]:
            if f["name"] in datum:
                _check_field(f, datum[f["name"]], f"{path}{f['name']}", structure, constraints)
            elif not _optional(f):
                structure.append(f"{path}{f['name']}: missing required field")
    elif avro_type.get("type") == "array" and isinstance(datum, list):
        for i, item in enumerate(datum):
            _walk(avro_type["items"], item, f"{path[:-1]}[{i}].", structure, constraints)


def _check_field(f: dict, value, path: str, structure: list[str], constraints: list[str]) -> None:
    if value is None:
        return
    if "maxItems" in f and isinstance(value, list) and len(value) > f["maxItems"]:
        constraints.append(f"{path}: {len(value)} items, more than {f['maxItems']}")
        return
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            constraints.append(f"{path}: not a finite number")
        if "minimum" in f and value < f["minimum"]:
            constraints.append(f"{path}: {value} is below the minimum {f['minimum']}")
        if "maximum" in f and value > f["maximum"]:
            constraints.append(f"{path}: {value} is above the maximum {f['maximum']}")
    if isinstance(value, str):
        if "maxLength" in f and len(value) > f["maxLength"]:
            constraints.append(f"{path}: longer than {f['maxLength']} characters")
        fmt = f.get("format")
        if fmt == "date-time":
            try:
                parse_timestamp(value)
            except ValueError as exc:
                constraints.append(f"{path}: {exc}")
        elif fmt == "ip-address":
            try:
                ipaddress.ip_address(value)
            except ValueError:
                constraints.append(f"{path}: not an IP address: {value!r:.60}")
    _walk(f["type"], value, path + ".", structure, constraints)


_FASTAVRO_NOISE = re.compile(r" expected \{.*", re.S)


def validate_payload(spec: TableSpec, payload: dict) -> None:
    """Raise Rejected('validate', ...) unless payload matches the schema."""
    structure: list[str] = []
    constraints: list[str] = []
    _walk(spec.avro, payload, "", structure, constraints)
    if structure:
        kind = "unknown_field" if all(e.endswith("unknown field") for e in structure) else "missing_field"
        raise Rejected("validate", kind, "; ".join(structure)[:2000])
    # Types and enums: fastavro is the well-kept implementation of Avro's
    # rules; its messages name the field and the offending value.
    try:
        validate(payload, spec.parsed, raise_errors=True, strict=True)
    except ValidationError as exc:
        msgs = [_FASTAVRO_NOISE.sub(" (wrong type or value)", str(e)).replace("ecommerce.events.", "")
                for e in (getattr(exc, "errors", None) or [exc])]
        raise Rejected("validate", "schema_mismatch", "; ".join(m[:300] for m in msgs)[:2000]) from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise Rejected("validate", "schema_mismatch", f"{type(exc).__name__}: {exc}"[:2000]) from None
    if constraints:
        raise Rejected("validate", "constraint_violation", "; ".join(constraints)[:2000])


# -- the whole message -------------------------------------------------------------
def parse_message(data: bytes, attributes: dict | None, publish_time: datetime | None = None,
                  *, now: datetime | None = None, limits: Limits = Limits()) -> Event:
    """Decode, parse and validate one message. Raises Rejected."""
    attributes = dict(attributes or {})
    if not isinstance(data, (bytes, bytearray)):
        raise Rejected("decode", "not_bytes", f"payload is {type(data).__name__}, not bytes")
    if len(data) > limits.max_message_bytes:
        raise Rejected("decode", "oversized", f"payload is {len(data)} bytes, the limit is {limits.max_message_bytes}")

    event_type = attributes.get(EVENT_TYPE_ATTR)
    specs = event_specs()
    if event_type is None:
        raise Rejected("decode", "missing_event_type", f"no {EVENT_TYPE_ATTR} attribute")
    if event_type not in specs:
        raise Rejected("decode", "unknown_event_type",
                       f"{EVENT_TYPE_ATTR} {event_type!r:.80} is not one of {', '.join(specs)}")

    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("decode", "not_utf8", f"payload is not UTF-8: {exc}") from None
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise Rejected("parse", "invalid_json", f"invalid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise Rejected("parse", "not_an_object", f"payload is a JSON {type(payload).__name__}, not an object")

    spec = specs[event_type]
    validate_payload(spec, payload)

    event_time = parse_timestamp(payload[spec.event_time_field])  # format already checked
    now = now or datetime.now(_UTC)
    if event_time > now + limits.max_future_skew:
        raise Rejected("validate", "timestamp_out_of_range",
                       f"{spec.event_time_field} {format_timestamp(event_time)} is more than "
                       f"{limits.max_future_skew} in the future")
    if limits.max_event_age is not None and event_time < now - limits.max_event_age:
        raise Rejected("validate", "timestamp_out_of_range",
                       f"{spec.event_time_field} {format_timestamp(event_time)} is older than {limits.max_event_age}")

    event_id = attributes.get(EVENT_ID_ATTR)
    derived = False
    if event_id is None or event_id == "":
        event_id = derived_event_id(event_type, payload)
        derived = True
    elif not _EVENT_ID_RE.match(event_id):
        raise Rejected("decode", "invalid_event_id",
                       f"{EVENT_ID_ATTR} {event_id!r:.80} must match {_EVENT_ID_RE.pattern}")
    return Event(event_type=event_type, event_id=event_id, event_time=event_time, payload=payload,
                 publish_time=publish_time, id_derived=derived, attributes=attributes)


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
        "event_type": attributes.get(EVENT_TYPE_ATTR, "")[:128] or None,
        "event_id": attributes.get(EVENT_ID_ATTR, "")[:128] or None,
        "publish_time": format_timestamp(publish_time) if publish_time else None,
        "payload": text,
        "payload_base64": b64,
        "payload_size": len(raw),
        "attributes": orjson.dumps(attributes).decode(),
    }
